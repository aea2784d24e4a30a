"""``sustainml demo``: the main job on one machine. Launch the pipeline on localhost, wait until
every node serves, submit each example problem, print its ranked options, stop the pipeline.

SIGINT, SIGTERM and SIGHUP stop it, and the nodes with it (see ``sustainml.launch``)."""

import io
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from .client import Client
from .exceptions import LaunchError, RequestTimeout, TaskFailed
from .launch import Launcher, load_launch, stop_on_signals
from .report import print_result
from .web.server import BackgroundServer, WebConfig


def run_demo(launch_file: str | Path, problems: Sequence[str | Path], *, keep: bool = False,
             timeout_s: float = 900.0, web: WebConfig | None = None) -> int:
    """``web``: also serve the web UI from this process while the pipeline runs, and keep running."""
    launcher = Launcher(load_launch(launch_file), out=io.StringIO() if not (keep or web) else sys.stderr)
    # A stop signal interrupts whatever the main thread waits on (KeyboardInterrupt), and the clean-up
    # below stops the nodes; a second signal kills them at once.
    with stop_on_signals(lambda again: launcher.stop(now=True) if again else None, interrupt=True):
        return _run(launcher, launch_file, problems, keep=keep, timeout_s=timeout_s, web=web)


def _run(launcher: Launcher, launch_file: str | Path, problems: Sequence[str | Path], *, keep: bool,
         timeout_s: float, web: WebConfig | None) -> int:
    console = Console()
    keep = keep or web is not None
    server: BackgroundServer | None = None
    runner = threading.Thread(target=launcher.run, name="launcher", daemon=True)
    console.print(f"[bold]Starting the pipeline[/] from {launch_file} (node logs "
                  f"{'below' if keep else 'hidden; see sustainml launch'})")
    failed = 0
    serving = False   # Ctrl-C while only serving is how the user stops it, not a failure
    try:
        runner.start()
        deadline = time.monotonic() + 120
        while not launcher.all_ready():
            if launcher.error:
                raise LaunchError(launcher.error)
            if not runner.is_alive():
                raise LaunchError("the launcher stopped before every node was ready")
            if time.monotonic() > deadline:
                waiting = [n.spec.name for n in launcher.nodes if not n.ready]
                raise LaunchError(f"not ready within 120 s (no serving NodeStatus seen from its process): "
                                  f"{', '.join(waiting)}")
            time.sleep(0.2)
        console.print("all nodes ready: " + ", ".join(n.spec.name for n in launcher.nodes))
        with Client() as client:
            if web is not None:
                server = BackgroundServer(web, client)
                console.print(f"[bold]web UI on {server.start()}[/] (open it in a browser)")
            for path in problems:
                console.rule(f"[bold]{path}")
                handle = client.submit(path)
                with console.status("measuring...") as spinner:
                    for status in handle.progress(timeout_s=timeout_s):
                        spinner.update(f"{status.progress:5.1f}% {status.message}")
                try:
                    print_result(handle.result(timeout_s=timeout_s), console)
                except TaskFailed as e:
                    failed += 1
                    console.print(f"[red]{e}")
            if keep:
                console.print("pipeline running" + (f", web UI on {server.url}" if server else "") + "; Ctrl-C to stop")
                serving = True
                while runner.is_alive():
                    time.sleep(0.5)
    except (KeyboardInterrupt, RequestTimeout) as e:
        failed += 0 if serving else 1
        if not serving and str(e):
            console.print(f"[yellow]{e}")
    finally:
        if server is not None:
            server.stop()
        launcher.stop()
        runner.join(timeout=launcher.stop_grace_s + 20)
    return 3 if failed else 0
