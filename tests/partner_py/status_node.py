"""A partner node as small as can be, for the launcher's tests: it joins the bus (the domain and DDS
configuration come from the environment the launcher gives), announces itself serving on
``node_status`` with its own pid, as any partner (tests/partner_c/partner_node.c) does, and logs
nothing. ``--child`` also starts a helper process of its own (in its process group), as a partner's
program may. SIGINT, SIGTERM and SIGHUP stop it."""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

from sustainml import msg, topics
from sustainml.bus import Participant


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--child", action="store_true", help="start a helper process that sleeps")
    args = parser.parse_args()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"]) if args.child else None
    bus = Participant()
    status = bus.publisher(topics.NODE_STATUS)
    started = time.time()
    while not stop.wait(0.0):
        status.publish(msg.NodeStatus(node=args.name, kind="partner", host=bus.host, pid=os.getpid(),
                                      state=msg.NodeState.NODE_IDLE, message="ready",
                                      heartbeat_unix_s=time.time(), started_unix_s=started))
        stop.wait(0.5)
    bus.close()
    if helper is not None:
        helper.terminate()
        helper.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
