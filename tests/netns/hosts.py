"""Several "machines" on one: Linux network namespaces joined by veth pairs to a bridge, each
running its own ``sustainml launch`` with its own launch file, DDS by unicast between them.

The bridge lives in a namespace of its own (the "switch"), so nothing is added to the root
namespace: the test's addresses (``SUBNET``) exist only inside the test's namespaces, and the
namespaces of two runs never see each other. Every namespace name carries the pid of the test
process. ``Network.close`` kills every process left in the namespaces (``ip netns pids``) and
deletes them, whatever state the test left them in.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

__all__ = ["SUBNET", "INTERFACE", "unavailable_reason", "Host", "Network", "NamespaceProcess",
           "render", "render_dds_xml"]

TEMPLATES = Path(__file__).resolve().parent
SUBNET = "10.231.0"          # 10.231.0.0/24, private to the test's namespaces
INTERFACE = "eth0"           # each host's end of its veth pair, the same name in every namespace
_PREFIX_LEN = 24


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {done.stderr.strip()}")
    return done


def unavailable_reason() -> str | None:
    """Why namespaces, veth pairs and bridges cannot be made here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (run the tests as root, as CI does)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed; ./install.sh installs it"
    probe = f"smlprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except RuntimeError as e:
        return f"`ip netns add` is not permitted here: {e}"
    try:
        entered = subprocess.run(["ip", "netns", "exec", probe, "true"], capture_output=True, text=True,
                                 timeout=30)
        if entered.returncode != 0:
            return f"`ip netns exec` is not permitted here: {entered.stderr.strip()}"
        _ip("link", "add", "br0", "type", "bridge", ns=probe)
        _ip("link", "add", "probe0", "type", "veth", "peer", "name", "probe1", ns=probe)
    except RuntimeError as e:
        return f"veth pairs or bridges cannot be made in a network namespace: {e}"
    finally:
        _ip("netns", "delete", probe, check=False)
    return None


@dataclass(frozen=True)
class Host:
    name: str         # what the host calls itself (a hardware node's SUSTAINML_HOST / `host` param)
    namespace: str
    address: str      # on INTERFACE, in SUBNET


class Network:
    """A switch namespace holding a bridge, and one namespace per host wired to it by a veth pair
    (``INTERFACE`` in the host, ``to-HOST`` on the switch), with loopback up everywhere."""

    def __init__(self, host_names: Sequence[str], *, prefix: str | None = None) -> None:
        prefix = prefix or f"sml{os.getpid()}"
        self.switch = f"{prefix}-switch"
        self.hosts = {name: Host(name, f"{prefix}-{name}", f"{SUBNET}.{i}")
                      for i, name in enumerate(host_names, start=1)}
        self._made: list[str] = []

    def create(self) -> "Network":
        """Make the namespaces and links; on any failure, undo what was made and raise."""
        try:
            self._add_namespace(self.switch)
            _ip("link", "add", "br0", "type", "bridge", ns=self.switch)
            _ip("link", "set", "br0", "up", ns=self.switch)
            for host in self.hosts.values():
                self._add_namespace(host.namespace)
                port = self._port(host.name)
                _ip("link", "add", port, "type", "veth", "peer", "name", INTERFACE,
                    "netns", host.namespace, ns=self.switch)
                _ip("link", "set", port, "master", "br0", ns=self.switch)
                _ip("link", "set", port, "up", ns=self.switch)
                _ip("addr", "add", f"{host.address}/{_PREFIX_LEN}", "dev", INTERFACE, ns=host.namespace)
                _ip("link", "set", INTERFACE, "up", ns=host.namespace)
        except BaseException:
            self.close()
            raise
        return self

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("link", "set", "lo", "up", ns=name)

    @staticmethod
    def _port(host_name: str) -> str:
        port = f"to-{host_name}"
        if len(port) > 15:
            raise ValueError(f"host name {host_name!r} too long: the switch port {port!r} must fit "
                             "in 15 characters (Linux interface names)")
        return port

    def cut(self, host_name: str) -> None:
        """Pull the host's cable: its switch port goes down. The host's processes run on, unaware;
        the others stop hearing from them, as when a machine drops off the network."""
        _ip("link", "set", self._port(host_name), "down", ns=self.switch)

    def command(self, host_name: str, *cmd: str) -> list[str]:
        """``cmd`` run inside the host's namespace."""
        return ["ip", "netns", "exec", self.hosts[host_name].namespace, *cmd]

    def pids(self, namespace: str) -> list[int]:
        done = _ip("netns", "pids", namespace, check=False)
        return [int(p) for p in done.stdout.split() if p.isdigit()]

    def close(self) -> None:
        """Kill every process still in the namespaces, then delete them. Idempotent."""
        for namespace in reversed(self._made):
            for _ in range(50):   # SIGKILL, then look again: a dying launcher may have started one more
                pids = self.pids(namespace)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
            _ip("netns", "delete", namespace, check=False)
        self._made.clear()


class NamespaceProcess:
    """A command running in a host's namespace, its output lines kept (and parsed, for
    ``sustainml echo``) as they come, so a test waits for a line rather than sleeping."""

    def __init__(self, network: Network, host_name: str, cmd: Sequence[str], *, label: str,
                 cwd: Path) -> None:
        self.name = f"{label} on {host_name}"
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            network.command(host_name, *cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def log(self, last: int = 200) -> str:
        return "\n".join(f"  {line}" for line in self.lines[-last:])

    def wait_for(self, find: Callable[[list[str]], Any], timeout_s: float, what: str, *,
                 seen: Callable[[], str] | None = None) -> Any:
        """The first truthy ``find(lines)``; AssertionError after ``timeout_s``, or when the process
        ends first, with ``seen()`` (what came instead) or else the output."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = find(list(self.lines))
            if found:
                return found
            if self.proc.poll() is not None:
                self._pump.join(timeout=5)
                found = find(list(self.lines))
                if found:
                    return found
                raise AssertionError(f"[{self.name}] exited with code {self.proc.returncode} before "
                                     f"{what}; its output:\n{self.log()}")
            if time.monotonic() > deadline:
                instead = seen() if seen else f"its output:\n{self.log()}"
                raise AssertionError(f"[{self.name}] no {what} within {timeout_s:g} s; {instead}")
            time.sleep(0.1)

    def json_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM (``sustainml launch`` then stops its nodes), SIGKILL after ``grace_s``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._pump.join(timeout=5)


def _yaml_value(value: Any) -> str:
    return json.dumps(str(value) if isinstance(value, Path) else value)


def render(template: str, dest: Path, **values: Any) -> Path:
    """``tests/netns/TEMPLATE`` with ``$name`` replaced by the values (as JSON scalars, which are
    YAML), written to ``dest``."""
    text = Template((TEMPLATES / template).read_text()).substitute(
        {k: _yaml_value(v) for k, v in values.items()})
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return dest


def render_dds_xml(dest: Path, network: Network, *, tag: str) -> Path:
    """The Cyclone XML every host uses: multicast off, every host's address a unicast peer, and
    the discovery tag (sustainml adds SUSTAINML_DISCOVERY_TAG only to its embedded loopback XML)."""
    peers = "\n".join(f'        <Peer address="{h.address}"/>  <!-- {h.name} -->'
                      for h in network.hosts.values())
    text = Template((TEMPLATES / "cyclonedds.xml.in").read_text()).substitute(
        interface=INTERFACE, peers=peers, tag=tag)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return dest
