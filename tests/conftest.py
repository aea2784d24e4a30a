"""Shared fixtures. Every test that touches DDS gets a fresh domain id and a discovery tag that
carries the process id, so parallel runs and consecutive tests never cross-talk.

Tiers (markers, registered in pyproject.toml): ``pipeline`` for a test that starts the whole pipeline
(``pipeline`` and ``shared_pipeline`` mark their tests here; other starts are marked in their module),
``browser`` for chromium, ``netns`` for network namespaces, and ``slow`` for every one of those and any
other test over about 5 s. ``pytest -m "not slow"`` is the fast tier."""

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


#: Markers that make a test ``slow`` as well.
SLOW_KINDS = ("pipeline", "browser", "netns")
#: Fixtures that start the whole pipeline: a test that uses one is marked ``pipeline``.
PIPELINE_FIXTURES = frozenset({"pipeline", "shared_pipeline"})


#: Tests without a pipeline that took 2 s or more each in a fast-tier run on the 2-core VM (heavy
#: models, real processes, the type checker, whose first run takes about 40 s), by node id prefix:
#: marked slow so that ``-m "not slow"`` stays under two minutes. CI runs them all.
SLOW_TESTS = (
    "tests/test_types.py::",
    "tests/test_builder_message.py::test_every_catalogue_builder_travels_and_reads_back_the_same[gpt2]",
    "tests/test_builder_message.py::test_every_catalogue_builder_travels_and_reads_back_the_same[distilgpt2]",
    "tests/test_tracking.py::test_the_example_refuses_an_unknown_region_in_one_line",
    "tests/test_launcher_signals.py::",
    "tests/test_catalogue_extension.py::test_a_config_that_would_download_a_backbone_is_refused",
    "tests/test_hw_measure.py::test_a_stalling_counter_shows_up_as_uncertainty_not_as_a_wrong_mean",
    "tests/test_hw_estimate.py::test_the_profile_does_not_depend_on_which_tensor_ids_python_reuses",
    "tests/test_catalogue_models.py::test_the_smallest_model_of_each_task_runs_a_forward_pass_and_a_training_step_on_the_cpu[text_generation",
    "tests/test_onnx_export.py::test_onnx_runtime_computes_what_torch_computes_at_any_batch[",
    "tests/test_web.py::test_no_pipeline_is_reported_not_waited_on",
)


@pytest.hookimpl(tryfirst=True)   # before -m deselects by these markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pipeline)
        if any(item.get_closest_marker(kind) for kind in SLOW_KINDS) or item.nodeid.startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


def private_domain(store_dir: Path, tag: str = "test") -> dict[str, str]:
    """The environment of a fresh DDS domain: its id, a discovery tag with our pid, a store folder."""
    domain = 1 + next(_domains) % 230
    return {
        "SUSTAINML_DOMAIN_ID": str(domain),
        "SUSTAINML_DISCOVERY_TAG": f"{tag}-{os.getpid()}-{domain}",
        "SUSTAINML_STORE_DIR": str(store_dir),
    }


def use_environment(mp: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Point this process (and what it starts) at ``env``'s domain, ignoring the caller's DDS settings."""
    for name in ("CYCLONEDDS_URI", "SUSTAINML_DDS_CONFIG", "SUSTAINML_CONFIG"):
        mp.delenv(name, raising=False)
    for key, value in env.items():
        mp.setenv(key, value)


@pytest.fixture
def dds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A private DDS domain for this test; the environment every process of the test inherits."""
    env = private_domain(tmp_path / "store")
    use_environment(monkeypatch, env)
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
    """A pipeline of this test's own, for a test that kills nodes or needs an empty store."""
    running = RunningPipeline(fast_pipeline()).start()
    yield running
    running.stop()


#: The shared pipeline's parameters: measurements of every task type (in tests/test_task_types_pipeline.py)
#: run at once, so stages get 10 minutes and training steps 2 samples.
SHARED_PIPELINE_PARAMS = {"hw_constraints": {"train_batch_size": "2"}, "orchestrator": {"stage_timeout_s": "600"}}
_shared_users: set[str] = set()   # the collected tests that use shared_pipeline, until each has run


def pytest_collection_finish(session: pytest.Session) -> None:
    _shared_users.update(item.nodeid for item in session.items
                         if "shared_pipeline" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def _shared_pipeline_running(tmp_path_factory: pytest.TempPathFactory
                             ) -> Iterator[tuple[RunningPipeline, dict[str, str]]]:
    env = private_domain(tmp_path_factory.mktemp("shared") / "store", tag="shared")
    description = fast_pipeline(**SHARED_PIPELINE_PARAMS)
    description.env.update(env)   # a respawned node joins this domain whatever the environment is by then
    with pytest.MonkeyPatch.context() as mp:
        use_environment(mp, env)   # the launcher's own bus, while it starts
        running = RunningPipeline(description).start()
    try:
        yield running, env
    finally:
        running.stop()


@pytest.fixture
def shared_pipeline(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                    _shared_pipeline_running: tuple[RunningPipeline, dict[str, str]]) -> Iterator[RunningPipeline]:
    """One pipeline for every test that only submits problems and reads answers, started by the first
    and stopped after the last (one start is about 20 s). The test's environment points at its domain
    and store, as ``dds`` does. Such a test must not kill or stop nodes, change parameters, or count on
    an empty store or on tasks of its own alone (filter by its problem id): use ``pipeline`` for that."""
    running, env = _shared_pipeline_running
    use_environment(monkeypatch, env)
    yield running
    _shared_users.discard(request.node.nodeid)
    if not _shared_users:
        running.stop()   # no test left for it: free the cores now, not at the end of the session


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
