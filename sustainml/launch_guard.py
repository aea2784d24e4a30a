"""The launcher's guard: stops the launcher's nodes when the launcher dies, however it dies.

``sustainml.launch.Launcher`` starts each node in its own process group and runs this file as a
separate small process (``python -I launch_guard.py``), telling it on its stdin which groups are
live: ``+PGID`` when a node starts, ``-PGID`` once it was reaped. The launcher is the only holder of
the pipe's write end, so the guard reads end-of-file exactly when the launcher is gone, even by
SIGKILL or a crash; it then sends SIGTERM to every group still listed (a node shuts down cleanly on
it), and SIGKILL to those still there after a grace period.

Why a guard process as well as Linux's parent-death signal (PR_SET_PDEATHSIG, which ``launch.py`` sets
in each node in a ``preexec_fn``): that signal reaches only the process the launcher forked, not a
node's own children (a partner's helpers, the program a ``cmd`` shell script starts), and it is
Linux-only; the guard signals whole process groups, on any POSIX system. The signal covers what the
guard cannot: the guard killed together with the launcher (``kill -9`` of both, the OOM killer), and
the moment before the guard is told a new node's group. Two caveats that once ruled the signal out do
not bite here: it fires when the *thread* that forked the node ends, and every node is forked by the
thread that runs ``Launcher.run``, which returns only after it stopped them all (``sustainml demo``
runs it on a worker thread that lives as long); and a ``preexec_fn`` is unsafe in a process with
threads when it runs Python that may take a lock another thread held at the fork, while the
launcher's makes one call into libc through a function resolved before the fork, and nothing else
(``launch._die_with_parent``).

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
