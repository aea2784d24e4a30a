"""Shared fixtures. Every test that touches DDS gets a fresh domain id and a discovery tag that
carries the process id, so parallel runs and consecutive tests never cross-talk."""

import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sustainml.launch import Launcher, LaunchDescription, load_launch

ROOT = Path(__file__).resolve().parent.parent
_domains = itertools.count(random.Random(os.getpid()).randrange(1, 120))


class FakeClock:
    """A monotonic clock the test moves by hand (Units: s), for meters, trackers and caches."""

    def __init__(self, now_s: float = 0.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def dds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A private DDS domain for this test; the environment every process of the test inherits."""
    domain = 1 + next(_domains) % 230
    env = {
        "SUSTAINML_DOMAIN_ID": str(domain),
        "SUSTAINML_DISCOVERY_TAG": f"test-{os.getpid()}-{domain}",
        "SUSTAINML_STORE_DIR": str(tmp_path / "store"),
    }
    monkeypatch.delenv("CYCLONEDDS_URI", raising=False)
    monkeypatch.delenv("SUSTAINML_DDS_CONFIG", raising=False)
    monkeypatch.delenv("SUSTAINML_CONFIG", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


class RunningPipeline:
    """A launcher running in a background thread, with its output kept for assertions. It is ready
    when the launcher saw every node's serving NodeStatus on the bus (``Launcher.all_ready``)."""

    def __init__(self, description: LaunchDescription) -> None:
        self.lines: list[tuple[str, str]] = []
        self.launcher = Launcher(description, out=open(os.devnull, "w"),
                                 on_line=lambda name, line: self.lines.append((name, line)))
        self.thread = threading.Thread(target=self.launcher.run, daemon=True)
        self.exit_code: int | None = None

    def start(self, timeout_s: float = 90.0) -> "RunningPipeline":
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        try:
            while not self.launcher.all_ready():
                assert not self.launcher.error, self.launcher.error
                if time.monotonic() > deadline:
                    waiting = [n.spec.name for n in self.launcher.nodes if not n.ready]
                    raise AssertionError(f"not ready within {timeout_s:g} s: {', '.join(waiting)}\n" + self.log())
                time.sleep(0.1)
        except BaseException:
            self.stop()   # never leave node processes behind
            raise
        return self

    def log(self, name: str | None = None) -> str:
        return "\n".join(f"[{n}] {l}" for n, l in self.lines if name is None or n == name)

    def wait_line(self, name: str, text: str, timeout_s: float = 30.0, after: int = 0) -> int:
        """Index of the first line of node ``name`` after ``after`` that contains ``text``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for i, (n, line) in enumerate(self.lines[after:], start=after):
                if n == name and text in line:
                    return i
            time.sleep(0.05)
        raise AssertionError(f"no line {text!r} from {name} within {timeout_s} s:\n" + self.log())

    def stop(self) -> None:
        self.launcher.stop()
        self.thread.join(timeout=30)


def fast_pipeline(**overrides: str) -> LaunchDescription:
    """launch/pipeline.yaml with short measurement windows, so tests stay quick."""
    description = load_launch(ROOT / "launch" / "pipeline.yaml")
    for node in description.nodes:
        if node.name == "hw_constraints":
            node.cmd += ["--param", "window_s=0.2", "--param", "train_batch_size=4"]
        for name, value in overrides.get(node.name, {}).items():
            node.cmd += ["--param", f"{name}={value}"]
    return description


@pytest.fixture
def pipeline(dds: dict[str, str]) -> Iterator[RunningPipeline]:
    running = RunningPipeline(fast_pipeline()).start()
    yield running
    running.stop()


class WebProcess:
    """A real `sustainml web` process on a free port, with its URL read from the line it prints."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "sustainml.cli", "web", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        if "web UI on" not in line:
            self.stop()
            raise AssertionError(f"sustainml web did not start: {line}{self.proc.stdout.read()}")
        self.url = line.split(" on ", 1)[1].split()[0].rstrip("/")
        self.output: list[str] = []   # drained, so that a chatty server never blocks on a full pipe
        threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True).start()

    def request(self, path: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
                method: str | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def post_json(self, path: str, body: object, **headers: str) -> tuple[int, dict]:
        status, _, raw = self.request(path, data=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json", **headers})
        return status, json.loads(raw)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
