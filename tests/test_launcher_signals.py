"""Launchers stop their nodes however they are stopped: SIGINT, SIGTERM and SIGHUP to the real
`sustainml launch` and `sustainml demo` processes, and SIGKILL, which no handler sees. Readiness comes
from the bus, so a launcher counts its nodes as up whatever their log level, partners included."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from sustainml.launch import NodeSpec

from conftest import ROOT, RunningPipeline, fast_pipeline

PARTNER = ROOT / "tests" / "partner_py" / "status_node.py"
TIMEOUT_S = 120.0


def partners_launch_file(tmp_path: Path) -> Path:
    """Two partner programs started with `cmd:`, one of them with a helper process of its own."""
    path = tmp_path / "partners.yaml"
    path.write_text(f"nodes:\n"
                    f"  - name: partner_a\n    cmd: [{sys.executable}, {PARTNER}, partner_a, --child]\n"
                    f"  - name: partner_b\n    cmd: [{sys.executable}, {PARTNER}, partner_b]\n")
    return path


class Launched:
    """A real launcher process; its output is read on a thread, so it never blocks on a full pipe."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "sustainml.cli", *args], cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env={**os.environ, "COLUMNS": "200"})
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._new_line:
                self.lines.append(line)
                self._new_line.notify_all()

    def wait_for(self, text: str, count: int = 1, timeout_s: float = TIMEOUT_S) -> None:
        with self._new_line:
            if not self._new_line.wait_for(lambda: sum(text in line for line in self.lines) >= count
                                           or self.proc.poll() is not None, timeout_s) \
                    or sum(text in line for line in self.lines) < count:
                raise AssertionError(f"{count} x {text!r} not seen within {timeout_s:g} s:\n" + "".join(self.lines))

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def survivors(processes: list[psutil.Process], timeout_s: float = 30.0) -> list[psutil.Process]:
    """The processes still running (zombies count as gone) after up to ``timeout_s``."""
    def running(p: psutil.Process) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout_s
    alive = [p for p in processes if running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if running(p)]
    return alive


def stopped_cleanly(launched: Launched, processes: list[psutil.Process]) -> None:
    left = survivors(processes)
    for p in left:   # never leave them behind for the next test
        p.kill()
    assert not left, f"still running: {[(p.pid, p.cmdline()) for p in left]}\n" + "".join(launched.lines)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_launch_stops_its_nodes_on_each_stop_signal(dds, tmp_path: Path, signum: signal.Signals):
    launched = Launched("launch", str(partners_launch_file(tmp_path)))
    try:
        launched.wait_for("] ready: ", count=2)
        processes = launched.descendants()
        assert len(processes) >= 4   # two partners, a partner's helper, the guard
        launched.proc.send_signal(signum)
        assert launched.proc.wait(timeout=60) == 0, "".join(launched.lines)
        stopped_cleanly(launched, processes)
    finally:
        launched.kill()


def test_a_killed_launcher_takes_its_nodes_with_it(dds, tmp_path: Path):
    launched = Launched("launch", str(partners_launch_file(tmp_path)))
    try:
        launched.wait_for("] ready: ", count=2)
        processes = launched.descendants()
        launched.proc.send_signal(signal.SIGKILL)   # no handler runs: the guard process stops the groups
        launched.proc.wait(timeout=30)
        stopped_cleanly(launched, processes)
    finally:
        launched.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_demo_stops_its_nodes_on_a_stop_signal(dds, tmp_path: Path, signum: signal.Signals):
    # No orchestrator among these nodes: the demo waits for one to submit to, and is stopped waiting.
    launched = Launched("demo", "--launch", str(partners_launch_file(tmp_path)), "examples/tool_wear_tabular.yaml")
    try:
        launched.wait_for("all nodes ready")
        processes = launched.descendants()
        launched.proc.send_signal(signum)
        launched.proc.wait(timeout=60)
        stopped_cleanly(launched, processes)
    finally:
        launched.kill()


@pytest.mark.pipeline
def test_sigterm_to_demo_web_leaves_no_node_behind_mid_task(dds):
    """The way systemd or `docker stop` ends the main job: while it measures the first example."""
    launched = Launched("demo", "--web", "--port", "0", "examples/tool_wear_tabular.yaml")
    try:
        launched.wait_for("web UI on http")
        processes = launched.descendants()
        assert {"orchestrator", "hw_constraints"} <= {" ".join(p.cmdline()).rsplit(" node ", 1)[-1].split()[0]
                                                       for p in processes if " node " in " ".join(p.cmdline())}
        launched.proc.send_signal(signal.SIGTERM)
        launched.proc.wait(timeout=60)
        stopped_cleanly(launched, processes)
        assert sum("shutting down" in line for line in launched.lines) >= 5, "".join(launched.lines)
    finally:
        launched.kill()


@pytest.mark.pipeline
def test_readiness_comes_from_the_bus_at_warning_level_and_counts_cmd_partners(dds, monkeypatch):
    """No log line says "ready" here: the nodes log warnings only and the partners log nothing."""
    monkeypatch.setenv("SUSTAINML_LOG_LEVEL", "WARNING")
    description = fast_pipeline()
    description.nodes += [
        NodeSpec("partner", [sys.executable, str(PARTNER), "partner"]),
        # A wrapper that starts the real program as its child: the announced pid is a descendant's.
        NodeSpec("wrapped_partner", ["sh", "-c", f"{sys.executable} {PARTNER} wrapped_partner; exit 0"]),
    ]
    pipeline = RunningPipeline(description).start(timeout_s=TIMEOUT_S)
    try:
        assert pipeline.launcher.all_ready()
        assert " ready on " not in pipeline.log()
        for name in ("orchestrator", "task_encoder", "model_provider", "hw_constraints", "carbon_tracker",
                     "partner", "wrapped_partner"):
            assert "ready: " in pipeline.log(name), pipeline.log()
    finally:
        pipeline.stop()
