"""``sustainml launch``: start the nodes a launch file lists, each as its own OS process.

A launch file is data (as in ROS 2 launch), e.g. ``launch/pipeline.yaml``::

    dds_config: loopback          # the embedded loopback-only default, or a Cyclone XML path
    nodes:
      - node: orchestrator        # a built-in node kind ...
        params: {stage_timeout_s: 600}
      - node: hw_constraints
        name: hw_laptop           # optional instance name
        respawn: true             # default true
      - name: my_partner_node     # ... or any program (a partner's node in C, say)
        cmd: [./build/partner_node]

The launcher prefixes each line of a node's output with its name, respawns a node that exits (with
a back-off that doubles while it keeps crashing), and fails with one clear line when a node cannot
start at all.

A node counts as ready when it says so on the bus: its ``NodeStatus`` (topic ``node_status``) in a
serving state (idle, busy or error), from the process the launcher started (matched by pid, or a
descendant's pid: a partner's ``cmd`` may be a script that starts the real program). Project nodes and
partners in any language are counted alike, whatever their log level.

Stopping: SIGINT, SIGTERM or SIGHUP to ``sustainml launch`` (or ``sustainml demo``) stops every node
(SIGINT to each node's process group, SIGKILL after a grace period; a second signal kills at once).
Each node runs in its own process group, watched by a guard process (``launch_guard.py``) that stops
the groups if the launcher dies without stopping them, even by SIGKILL; on Linux each node also gets
SIGTERM from the kernel when the launcher dies (the parent-death signal), should the guard die too.

One launch per store folder (the nodes' ``SUSTAINML_STORE_DIR``): the launcher holds the OS lock of
``STORE_DIR/launch.lock`` while it runs and keeps there the pid, start time and command line of each
node it started. A second launch on the same folder is refused with one line naming the first. A
launch that finds nodes of an earlier launch still running (its launcher died and they outlived it)
stops them (SIGTERM to their groups, SIGKILL after the grace period) before it starts its own, and
says so in one line: one pipeline per store, never two. A launch on another folder whose node names
are already alive on the same DDS domain is refused by the nodes themselves, on the bus.
"""

import ctypes
import functools

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psutil
import yaml

from . import msg, topics
from .config import load_config
from .exceptions import ConfigError, LaunchError, SustainMLError
from .store_lock import StoreLock

__all__ = ["NODE_KINDS", "NodeSpec", "LaunchDescription", "load_launch", "Launcher", "STOP_SIGNALS",
           "LaunchInterrupted", "stop_on_signals", "launch_main"]

#: Built-in node kinds and the module whose ``main`` runs each.
NODE_KINDS = {
    "orchestrator": "sustainml_nodes.orchestrator.node",
    "task_encoder": "sustainml_nodes.task_encoder.node",
    "model_provider": "sustainml_nodes.model_provider.node",
    "hw_constraints": "sustainml_nodes.hw_constraints.node",
    "carbon_tracker": "sustainml_nodes.carbon_tracker.node",
}

#: Kinds whose nodes are named KIND@HOST unless given a name (``Node.unique_per_host``; the
#: launcher cannot import the nodes, so tests/test_trust.py checks that the two agree).
UNIQUE_PER_HOST = frozenset({"hw_constraints"})

#: The states of a node that serves: it is ready from the first of them it announces.
SERVING = (msg.NodeState.NODE_IDLE, msg.NodeState.NODE_BUSY, msg.NodeState.NODE_ERROR)
#: The signals that stop a launcher and its nodes.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_GUARD = Path(__file__).resolve().with_name("launch_guard.py")
#: The file a launcher holds locked in its store folder, naming its nodes.
LAUNCH_LOCK = "launch.lock"
_COLOURS = ("36", "33", "35", "32", "34", "31", "96", "93")


@dataclass
class NodeSpec:
    name: str
    cmd: list[str]
    respawn: bool = True
    respawn_delay_s: float = 1.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class LaunchDescription:
    nodes: list[NodeSpec]
    env: dict[str, str] = field(default_factory=dict)   # for every node: DDS config, domain
    source: str = ""                                    # the launch file, for messages

    def admitted(self, host: str) -> str:
        """``SUSTAINML_ADMIT`` for its nodes: the names its nodes announce (a hardware node without a
        name of its own is ``hw_constraints@HOST``) and those the launch file or environment admits
        (nodes on other hosts): a node of any other name holds no task and is not believed."""
        names = [p for p in self.env.get("SUSTAINML_ADMIT", os.environ.get("SUSTAINML_ADMIT", "")).split(",") if p]
        for node in self.nodes:
            if node.name in UNIQUE_PER_HOST and "--name" not in node.cmd:
                # Named after the host it reports: its `host` parameter, else SUSTAINML_HOST, else ours.
                params = [node.cmd[i + 1] for i, arg in enumerate(node.cmd[:-1]) if arg == "--param"]
                reported = [p.partition("=")[2] for p in params if p.startswith("host=") and p != "host="]
                env_host = node.env.get("SUSTAINML_HOST") or self.env.get("SUSTAINML_HOST") \
                    or os.environ.get("SUSTAINML_HOST")
                names.append(f"{node.name}@{(reported or [env_host or host])[-1]}")
            else:
                names.append(node.name)
        return ",".join(dict.fromkeys(names))

    def store_dir(self) -> Path:
        """The folder the nodes keep their stores in: their ``SUSTAINML_STORE_DIR``, else the config's."""
        if self.env.get("SUSTAINML_STORE_DIR"):
            return Path(self.env["SUSTAINML_STORE_DIR"]).resolve()
        try:
            return Path(load_config(self.env.get("SUSTAINML_CONFIG")).store_dir).resolve()
        except SustainMLError as e:
            raise LaunchError(f"cannot tell the nodes' store folder: {e}") from e


def load_launch(path: str | Path) -> LaunchDescription:
    """Read and validate a launch file; every problem is a LaunchError naming the file and entry."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise LaunchError(f"cannot read launch file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise LaunchError(f"launch file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not data["nodes"]:
        raise LaunchError(f"launch file {path}: expected a mapping with a non-empty 'nodes' list")
    unknown = set(data) - {"nodes", "dds_config", "domain_id", "env", "admit"}
    if unknown:
        raise LaunchError(f"launch file {path}: unknown keys {sorted(unknown)}; "
                          "known: nodes, dds_config, domain_id, env, admit")
    env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
    admit = data.get("admit") or []
    if not isinstance(admit, list) or not all(isinstance(a, str) and a.strip() for a in admit):
        raise LaunchError(f"launch file {path}: 'admit' must be a list of node names (shell-style patterns "
                          "allowed), e.g. [hw_constraints@gpu01]")
    if admit:
        env["SUSTAINML_ADMIT"] = ",".join(a.strip() for a in admit)
    dds = data.get("dds_config", "loopback")
    if dds and dds != "loopback":
        xml = (path.parent / dds).resolve()
        if not xml.is_file():
            raise LaunchError(f"launch file {path}: dds_config {dds!r} is not a file (looked at {xml})")
        env["SUSTAINML_DDS_CONFIG"] = str(xml)
    if "domain_id" in data:
        env["SUSTAINML_DOMAIN_ID"] = str(data["domain_id"])
    nodes, names = [], set()
    for i, entry in enumerate(data["nodes"]):
        where = f"launch file {path}, nodes[{i}]"
        if not isinstance(entry, dict):
            raise LaunchError(f"{where}: expected a mapping with 'node' or 'cmd'")
        bad = set(entry) - {"node", "name", "params", "respawn", "respawn_delay_s", "cmd", "env"}
        if bad:
            raise LaunchError(f"{where}: unknown keys {sorted(bad)}")
        if "cmd" in entry:
            cmd = entry["cmd"]
            if not isinstance(cmd, list) or not cmd:
                raise LaunchError(f"{where}: 'cmd' must be a non-empty list of arguments")
            exe = Path(str(cmd[0]))
            if not exe.is_absolute() and "/" in str(cmd[0]):
                cmd = [str((path.parent / exe).resolve()), *cmd[1:]]
            name = entry.get("name") or Path(str(cmd[0])).name
            cmd = [str(c) for c in cmd]
        else:
            kind = entry.get("node")
            if kind not in NODE_KINDS:
                raise LaunchError(f"{where}: unknown node {kind!r}; known: {', '.join(NODE_KINDS)} "
                                  "(or give 'cmd' to run any program)")
            name = entry.get("name") or kind
            cmd = [sys.executable, "-u", "-m", "sustainml.cli", "node", kind]
            if entry.get("name"):
                cmd += ["--name", name]
            for key, value in (entry.get("params") or {}).items():
                cmd += ["--param", f"{key}={value}"]
        if name in names:
            raise LaunchError(f"{where}: a second node named {name!r}; give each a distinct 'name'")
        names.add(name)
        nodes.append(NodeSpec(name, cmd, bool(entry.get("respawn", True)),
                              float(entry.get("respawn_delay_s", 1.0)),
                              {str(k): str(v) for k, v in (entry.get("env") or {}).items()}))
    return LaunchDescription(nodes, env, str(path))


class _Running:
    def __init__(self, spec: NodeSpec, colour: str) -> None:
        self.spec = spec
        self.colour = colour
        self.proc: subprocess.Popen[str] | None = None
        self.started = 0.0
        self.started_unix_s = 0.0
        self.ready = False
        self.ever_ready = False
        self.failures = 0
        self.delay_s = spec.respawn_delay_s
        self.next_start = 0.0
        self.last_line = ""


class _Guard:
    """The guard process (``launch_guard.py``) and the pipe that tells it the live process groups."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", str(_GUARD)], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True, start_new_session=True)
        self._lock = threading.Lock()

    def tell(self, line: str) -> None:
        with self._lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass   # the guard is gone: the launcher still stops its nodes itself

    def close(self) -> None:
        with self._lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Launcher:
    """Runs a LaunchDescription until ``stop()``; ``run()`` blocks and returns the exit code."""

    max_start_failures = 3
    max_delay_s = 30.0
    stop_grace_s = 10.0

    def __init__(self, description: LaunchDescription, *, out: TextIO | None = None,
                 on_line: Callable[[str, str], None] | None = None) -> None:
        self.description = description
        self.out = out or sys.stdout
        self.on_line = on_line
        self.colour = self.out.isatty() if hasattr(self.out, "isatty") else False
        self._stop = threading.Event()
        self._hurry = threading.Event()
        self._lock = threading.Lock()
        self.nodes = [_Running(s, _COLOURS[i % len(_COLOURS)]) for i, s in enumerate(description.nodes)]
        self.error = ""
        self._guard: _Guard | None = None
        self._bus: Any = None
        self._claim: StoreLock | None = None
        self._records: dict[str, dict[str, Any]] = {}   # per node name: pid, create time, command line

    def _say(self, node: _Running | None, line: str) -> None:
        name = node.spec.name if node else "launch"
        prefix = f"[{name}]"
        if self.colour and node:
            prefix = f"\x1b[{node.colour}m{prefix}\x1b[0m"
        with self._lock:
            print(f"{prefix} {line}", file=self.out, flush=True)
        if self.on_line:
            self.on_line(name, line)

    # ---------------------------------------------------------------- readiness, from the bus
    def _join_bus(self) -> None:
        """Listen to every node's status in the launch's DDS domain (the one the nodes get)."""
        from .bus import Participant   # cyclonedds is imported only by a launcher that runs

        env = self.description.env
        try:
            domain = int(env["SUSTAINML_DOMAIN_ID"]) if "SUSTAINML_DOMAIN_ID" in env else None
            config = load_config(env.get("SUSTAINML_CONFIG"), domain_id=domain,
                                 dds_config=env.get("SUSTAINML_DDS_CONFIG"))
            self._bus = Participant(config)
        except (ValueError, SustainMLError) as e:
            raise LaunchError(f"the launcher cannot join the nodes' DDS domain to see them start: {e}") from e
        self._bus.subscribe(topics.NODE_STATUS, self._on_status)

    def _on_status(self, status: msg.NodeStatus) -> None:
        if status.state not in SERVING:
            return
        waiting: dict[int, _Running] = {}
        for running in self.nodes:
            proc = running.proc   # once: the launcher's thread may clear it meanwhile
            if proc is not None and not running.ready:
                waiting[proc.pid] = running
        if not waiting:
            return
        node = waiting.get(int(status.pid))
        if node is not None and not self._is_local(status, node):
            node = None
        if node is None:
            node = next((waiting[pid] for pid in self._ancestors(int(status.pid), status.host) if pid in waiting), None)
        if node is None:
            return
        node.ready = node.ever_ready = True
        node.failures = 0
        self._say(node, f"ready: {status.node} serves (pid {status.pid}, {status.state.name[5:].lower()})")

    def _is_local(self, status: msg.NodeStatus, node: _Running) -> bool:
        """Whether a status whose pid is that of ``node``'s process comes from it, not from a process
        with the same pid on another host of the domain: same host name, or (a node may announce
        another host name, e.g. ``SUSTAINML_HOST``) started after the launcher started ``node``."""
        return status.host == self._bus.host or status.started_unix_s >= node.started_unix_s - 2.0

    def _ancestors(self, pid: int, host: str) -> list[int]:
        """The parents of a process that announced itself from ``host`` (none if not from this one)."""
        if self._bus is None or host != self._bus.host or pid <= 0:
            return []
        try:
            return [parent.pid for parent in psutil.Process(pid).parents()]
        except psutil.Error:
            return []

    # ---------------------------------------------------------------- processes
    def _start(self, node: _Running) -> None:
        env = {**os.environ, **self.description.env, **node.spec.env, "PYTHONUNBUFFERED": "1",
               "SUSTAINML_ADMIT": self.description.admitted(socket.gethostname())}
        if node.spec.cmd[3:5] != ["sustainml.cli", "node"] and "SUSTAINML_NODE_NAME" not in node.spec.env:
            # A `cmd:` program on our runtime announces itself under its entry's name, the name admitted.
            env["SUSTAINML_NODE_NAME"] = node.spec.name
        try:
            # Its own session and process group: a terminal's Ctrl-C reaches the launcher only (which
            # stops the nodes in order), and the node, its children included, is stopped as a group.
            node.proc = subprocess.Popen(node.spec.cmd, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         text=True, bufsize=1, start_new_session=True,
                                         preexec_fn=_die_with_parent_fn())
        except OSError as e:
            node.proc = None
            node.last_line = f"{node.spec.cmd[0]}: {e.strerror}"
            node.failures += 1
            self._say(node, f"cannot start: {node.last_line}")
            return
        if self._guard is not None:
            self._guard.tell(f"+{node.proc.pid}")
        self._record(node.spec.name, node.proc.pid)
        node.started = time.monotonic()
        node.started_unix_s = time.time()
        node.ready = False
        self._say(node, f"started (pid {node.proc.pid})")
        threading.Thread(target=self._pump, args=(node, node.proc), daemon=True).start()

    def _pump(self, node: _Running, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if line.strip():
                node.last_line = line.strip()
            self._say(node, line)

    # ---------------------------------------------------------------- one launch per store folder
    def _claim_store_dir(self) -> None:
        """Hold the store folder's launch lock, and stop the nodes an earlier launch left running there."""
        folder = self.description.store_dir()
        lock = StoreLock(folder, lock_file=folder / LAUNCH_LOCK, what="store folder",
                         holder=f"sustainml launch {self.description.source}".strip(),
                         hint="one launch per store folder: stop that one first (Ctrl-C in its terminal, or "
                              "kill its pid), or give this one another folder (SUSTAINML_STORE_DIR)")
        try:
            self._claim = lock.acquire()
        except ConfigError as e:   # StoreInUse, or a folder this user may not write
            raise LaunchError(str(e)) from None
        previous = lock.previous
        if previous is not None and previous.host == lock.holder.host:   # pids mean nothing on another host
            self._replace(previous.pid, previous.extra.get("nodes") or [])
        lock.write(nodes=[])

    def _replace(self, launcher_pid: int, records: list[dict[str, Any]]) -> None:
        """Stop the nodes of an earlier launch on this folder that still run: only processes that are
        really those nodes (same pid, start time and command line as recorded), each with its group."""
        found: list[tuple[str, psutil.Process]] = []
        for record in records:
            try:
                proc = psutil.Process(int(record["pid"]))
                if (abs(proc.create_time() - float(record["create_time"])) < 0.5
                        and proc.cmdline() == list(record["cmd"]) and proc.status() != psutil.STATUS_ZOMBIE):
                    found.append((str(record["name"]), proc))
            except (psutil.Error, KeyError, TypeError, ValueError):
                continue
        if not found:
            return
        started = time.monotonic()
        for _, proc in found:
            _signal_pgid(proc.pid, signal.SIGTERM)   # a node stops cleanly on it, as on the guard's
        alive = _wait_gone([proc for _, proc in found], self.stop_grace_s)
        for proc in alive:
            _signal_pgid(proc.pid, signal.SIGKILL)
        _wait_gone(alive, 5.0)
        names = ", ".join(f"{name} (pid {proc.pid})" for name, proc in found)
        self._say(None, f"replaced the nodes of an earlier launch on this store folder (launcher pid {launcher_pid}, "
                        f"gone) that were still running: stopped {names} in {time.monotonic() - started:.1f} s"
                        f"{f', {len(alive)} of them killed' if alive else ''}; starting this launch's own")

    def _record(self, name: str, pid: int | None) -> None:
        """Keep the launch lock's list of this launch's live nodes up to date (pid None: gone)."""
        if pid is None:
            self._records.pop(name, None)
        else:
            try:
                proc = psutil.Process(pid)
                self._records[name] = {"name": name, "pid": pid, "create_time": proc.create_time(),
                                       "cmd": proc.cmdline()}
            except psutil.Error:
                self._records.pop(name, None)   # gone already: nothing to stop later
        if self._claim is not None:
            try:
                self._claim.write(nodes=list(self._records.values()))
            except OSError as e:
                self._say(None, f"cannot update {self._claim.path}: {e}")

    def run(self) -> int:
        try:
            self._claim_store_dir()
            self._guard = _Guard()
            self._join_bus()
            for node in self.nodes:
                self._start(node)
            while not self._stop.wait(0.1):
                for node in self.nodes:
                    if node.proc is None:
                        if node.next_start and time.monotonic() >= node.next_start:
                            node.next_start = 0.0
                            self._start(node)
                        elif not node.next_start and node.failures:
                            self._after_exit(node, None)
                        continue
                    code = node.proc.poll()
                    if code is None:
                        continue
                    self._forget(node)
                    self._after_exit(node, code)
                if self.error:
                    break
        except LaunchError as e:
            self.error = str(e)
        finally:
            self._stop_all()
            if self._bus is not None:
                self._bus.close()
            if self._guard is not None:
                self._guard.close()
            if self._claim is not None:
                self._claim.release()
        return 1 if self.error else 0

    def _forget(self, node: _Running) -> None:
        """The node's process was reaped: the guard must not signal its group id any more."""
        if node.proc is not None and self._guard is not None:
            self._guard.tell(f"-{node.proc.pid}")
        if node.proc is not None:
            self._record(node.spec.name, None)
        node.proc = None

    def _after_exit(self, node: _Running, code: int | None) -> None:
        uptime = time.monotonic() - node.started
        if code is not None:
            self._say(node, f"exited with code {code} after {uptime:.1f} s")
            if not node.ready:
                node.failures += 1
        node.ready = False
        if not node.ever_ready and node.failures >= self.max_start_failures:
            self.error = (f"node {node.spec.name} could not start ({node.failures} attempts, last exit "
                          f"code {code}): {node.last_line}")
            return
        if not node.spec.respawn or self._stop.is_set():
            if code not in (0, None) and not node.spec.respawn:
                self._say(node, "not respawned (respawn: false)")
            node.next_start = 0.0
            node.failures = 0
            return
        # Back off while it keeps crashing soon after start; reset once it ran a while.
        node.delay_s = node.spec.respawn_delay_s if uptime > 60 else min(node.delay_s * 2, self.max_delay_s)
        node.next_start = time.monotonic() + node.delay_s
        self._say(node, f"respawning in {node.delay_s:.1f} s")

    def stop(self, *, now: bool = False) -> None:
        """Stop every node and return from ``run()``; ``now``: kill them without a grace period."""
        if now:
            self._hurry.set()
        self._stop.set()

    def _stop_all(self) -> None:
        live = [(n, proc) for n in self.nodes if (proc := n.proc) is not None and proc.poll() is None]
        for _, proc in live:
            _signal_group(proc, signal.SIGINT)
        deadline = time.monotonic() + self.stop_grace_s
        while any(proc.poll() is None for _, proc in live) and time.monotonic() < deadline:
            if self._hurry.wait(0.05):
                break
        for node, proc in live:
            if proc.poll() is None:
                self._say(node, "killed" if self._hurry.is_set() else
                          "did not stop within the grace period; killing it")
            # The whole group: a node's own children (a partner's helpers) go with it.
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        for node in self.nodes:
            if node.proc is not None:
                self._forget(node)

    def pid_of(self, name: str) -> int | None:
        for node in self.nodes:
            if node.spec.name == name and node.proc is not None:
                return node.proc.pid
        return None

    def all_ready(self) -> bool:
        return all(n.ready for n in self.nodes)


def _signal_group(proc: subprocess.Popen[str], signum: int) -> None:
    """Signal the process group the node leads (its pid: it was started in a new session)."""
    _signal_pgid(proc.pid, signum)


def _signal_pgid(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until each process ended (exited, or a zombie: not our child, and its new parent may never
    reap it); those still running after ``timeout_s``."""
    def running(proc: psutil.Process) -> bool:
        try:
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout_s
    alive = [proc for proc in processes if running(proc)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [proc for proc in alive if running(proc)]
    return alive


_PR_SET_PDEATHSIG = 1   # linux/prctl.h


def _load_prctl() -> Any:
    """libc's ``prctl``, resolved once here in the launcher (never between fork and exec), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> None:
    """Runs in the node's process between fork and exec: SIGTERM from the kernel when the launcher's
    forking thread ends (``Launcher.run``'s, which ends after its nodes, so: when the launcher dies;
    maybe more than once, as the kernel hands the node to the process's other threads while they exit),
    kept across exec; and if the launcher died before this, end now rather than run as an orphan.
    One call into libc through a function resolved before the fork: no import, no lock, no logging
    (why this is safe in a ``preexec_fn`` and where the guard is still needed: ``launch_guard.py``)."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _die_with_parent_fn() -> Callable[[], None] | None:
    return functools.partial(_die_with_parent, os.getpid()) if _PRCTL is not None else None


class LaunchInterrupted(KeyboardInterrupt):
    """Raised in the main thread when a stop signal (SIGINT, SIGTERM, SIGHUP) reaches a launcher that
    runs other work there (``sustainml demo``); a KeyboardInterrupt, so Ctrl-C and ``kill`` read alike."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextmanager
def stop_on_signals(on_stop: Callable[[bool], None], *, interrupt: bool = False) -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP call ``on_stop(again)`` (``again``: not the first
    such signal). With ``interrupt``, the first one also raises LaunchInterrupted in the main thread,
    for a launcher that does other work there (``sustainml demo``); later ones never raise, so that
    the clean-up the first one started is not cut short. Without this, SIGTERM or SIGHUP would end
    the process at once and leave its nodes running."""
    count = 0

    def handler(signum: int, _frame: Any) -> None:
        nonlocal count
        count += 1
        on_stop(count > 1)
        if interrupt and count == 1:
            raise LaunchInterrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def launch_main(path: str | Path, out: TextIO | None = None) -> int:
    """Run a launch file until SIGINT/SIGTERM/SIGHUP; the exit code of ``sustainml launch``."""
    launcher = Launcher(load_launch(path), out=out)
    # The first signal stops the nodes cleanly; a second one kills them.
    with stop_on_signals(lambda again: launcher.stop(now=again)):
        code = launcher.run()
    if launcher.error:
        print(f"sustainml launch: {launcher.error}", file=sys.stderr)
    return code
