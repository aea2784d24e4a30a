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
a back-off that doubles while it keeps crashing), stops every node on Ctrl-C or SIGTERM, and fails
with one clear line when a node cannot start at all.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from .exceptions import LaunchError

__all__ = ["NODE_KINDS", "NodeSpec", "LaunchDescription", "load_launch", "Launcher"]

#: Built-in node kinds and the module whose ``main`` runs each.
NODE_KINDS = {
    "orchestrator": "sustainml_nodes.orchestrator.node",
    "task_encoder": "sustainml_nodes.task_encoder.node",
    "model_provider": "sustainml_nodes.model_provider.node",
    "hw_constraints": "sustainml_nodes.hw_constraints.node",
    "carbon_tracker": "sustainml_nodes.carbon_tracker.node",
}

READY_MARK = " ready on "   # what Node logs once it serves (see sustainml.node.Node)
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
    unknown = set(data) - {"nodes", "dds_config", "domain_id", "env"}
    if unknown:
        raise LaunchError(f"launch file {path}: unknown keys {sorted(unknown)}; "
                          "known: nodes, dds_config, domain_id, env")
    env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
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
    return LaunchDescription(nodes, env)


class _Running:
    def __init__(self, spec: NodeSpec, colour: str) -> None:
        self.spec = spec
        self.colour = colour
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.ready = False
        self.ever_ready = False
        self.failures = 0
        self.delay_s = spec.respawn_delay_s
        self.next_start = 0.0
        self.last_line = ""


class Launcher:
    """Runs a LaunchDescription until ``stop()``; ``run()`` blocks and returns the exit code."""

    max_start_failures = 3
    max_delay_s = 30.0

    def __init__(self, description: LaunchDescription, *, out: TextIO | None = None,
                 on_line: Callable[[str, str], None] | None = None) -> None:
        self.description = description
        self.out = out or sys.stdout
        self.on_line = on_line
        self.colour = self.out.isatty() if hasattr(self.out, "isatty") else False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.nodes = [_Running(s, _COLOURS[i % len(_COLOURS)]) for i, s in enumerate(description.nodes)]
        self.error = ""

    def _say(self, node: _Running | None, line: str) -> None:
        name = node.spec.name if node else "launch"
        prefix = f"[{name}]"
        if self.colour and node:
            prefix = f"\x1b[{node.colour}m{prefix}\x1b[0m"
        with self._lock:
            print(f"{prefix} {line}", file=self.out, flush=True)
        if self.on_line:
            self.on_line(name, line)

    def _start(self, node: _Running) -> None:
        env = {**os.environ, **self.description.env, **node.spec.env, "PYTHONUNBUFFERED": "1"}
        try:
            node.proc = subprocess.Popen(node.spec.cmd, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         text=True, bufsize=1, start_new_session=True)
        except OSError as e:
            node.proc = None
            node.last_line = f"{node.spec.cmd[0]}: {e.strerror}"
            node.failures += 1
            self._say(node, f"cannot start: {node.last_line}")
            return
        node.started = time.monotonic()
        node.ready = False
        self._say(node, f"started (pid {node.proc.pid})")
        threading.Thread(target=self._pump, args=(node, node.proc), daemon=True).start()

    def _pump(self, node: _Running, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if READY_MARK in line:
                node.ready = node.ever_ready = True
                node.failures = 0
            if line.strip():
                node.last_line = line.strip()
            self._say(node, line)

    def run(self) -> int:
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
                node.proc = None
                self._after_exit(node, code)
            if self.error:
                break
        self._stop_all()
        return 1 if self.error else 0

    def _after_exit(self, node: _Running, code: int | None) -> None:
        uptime = time.monotonic() - node.started
        if code is not None:
            self._say(node, f"exited with code {code} after {uptime:.1f} s")
            if not node.ready:
                node.failures += 1
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

    def stop(self) -> None:
        self._stop.set()

    def _stop_all(self, grace_s: float = 10.0) -> None:
        live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        for node in live:
            node.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for node in live:
            try:
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(node, "did not stop within the grace period; killing it")
                node.proc.kill()
                node.proc.wait()

    def pid_of(self, name: str) -> int | None:
        for node in self.nodes:
            if node.spec.name == name and node.proc is not None:
                return node.proc.pid
        return None

    def all_ready(self) -> bool:
        return all(n.ready for n in self.nodes)


def launch_main(path: str | Path, out: TextIO | None = None) -> int:
    """Run a launch file until Ctrl-C/SIGTERM; the exit code of ``sustainml launch``."""
    launcher = Launcher(load_launch(path), out=out)

    def on_signal(signum: int, _frame: Any) -> None:
        launcher.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = launcher.run()
    if launcher.error:
        print(f"sustainml launch: {launcher.error}", file=sys.stderr)
    return code
