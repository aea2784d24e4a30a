"""The launcher's guard: stops the launcher's nodes when the launcher dies, however it dies.

``sustainml.launch.Launcher`` starts each node in its own process group and runs this file as a
separate small process (``python -I launch_guard.py``), telling it on its stdin which groups are
live: ``+PGID`` when a node starts, ``-PGID`` once it was reaped. The launcher is the only holder of
the pipe's write end, so the guard reads end-of-file exactly when the launcher is gone, even by
SIGKILL or a crash; it then sends SIGTERM to every group still listed (a node shuts down cleanly on
it), and SIGKILL to those still there after a grace period.

Why a guard process and not Linux's PR_SET_PDEATHSIG set in a ``preexec_fn``: the parent-death signal
fires when the *thread* that forked the child ends, not the process (``sustainml demo`` launches
from a worker thread); ``preexec_fn`` is unsafe in a process with threads (the launcher has DDS and
output threads) and cannot reach a node's own children; and it is Linux-only. A process group and a
guard reading a pipe have none of these limits.

It imports nothing of the package (it runs isolated, from its path), so it starts in milliseconds.
"""

import os
import signal
import sys
import time

GRACE_S = 8.0   # how long the nodes get to stop cleanly after SIGTERM before SIGKILL (Units: s)


def _signal_groups(groups: set[int], signum: int) -> set[int]:
    """Send ``signum`` to each group; the groups that still exist."""
    alive = set()
    for pgid in groups:
        try:
            os.killpg(pgid, signum)
            alive.add(pgid)
        except ProcessLookupError:
            pass
        except PermissionError:   # reused by another user's group: not ours any more
            pass
    return alive


def main() -> int:
    # Terminal signals are the launcher's to handle; the guard only acts once the launcher is gone.
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        line = line.strip()
        if not line[1:].isdigit():
            continue
        pgid = int(line[1:])
        if line[0] == "+":
            groups.add(pgid)
        elif line[0] == "-":
            groups.discard(pgid)
    # End of file: the launcher exited. Nodes it stopped itself were taken off the list already.
    alive = _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = _signal_groups(alive, 0)
    _signal_groups(alive, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
