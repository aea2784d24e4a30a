"""Configuration of every command: embedded defaults < config file < environment < command line.

``SUSTAINML_DOMAIN_ID`` sets the DDS domain for every command (nodes, launch, clients).
``SUSTAINML_DDS_CONFIG`` (or Cyclone's own ``CYCLONEDDS_URI``) names a Cyclone XML file; without
either, the embedded default keeps all traffic on the loopback interface with unicast discovery,
so that the whole pipeline runs on one machine with nothing to set up.
``SUSTAINML_SECURITY_DIR`` (or ``security_dir`` in the file) secures the bus with DDS Security: the folder
that ``sustainml security init`` made, holding this host's identities (``sustainml.security``).
"""

import dataclasses
import ipaddress
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from .exceptions import ConfigError

__all__ = ["RuntimeConfig", "load_config", "apply_dds_config", "LOOPBACK_XML", "node_params", "is_loopback_host"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

P = TypeVar("P", bound="DataclassInstance")

#: Loopback only, no multicast (``lo`` has none), peers found by unicast on 127.0.0.1.
LOOPBACK_XML = (
    '<CycloneDDS><Domain Id="any">'
    "<General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General>"
    "<Discovery><ParticipantIndex>auto</ParticipantIndex>"
    "<MaxAutoParticipantIndex>120</MaxAutoParticipantIndex>"
    '<Peers><Peer address="127.0.0.1"/></Peers>{tag}</Discovery>'
    "</Domain></CycloneDDS>"
)


@dataclass
class RuntimeConfig:
    """What every process needs to join the pipeline, plus per-node parameters from the file."""

    domain_id: int = 0
    dds_config: str = ""         # a Cyclone XML file or inline XML; "" = embedded loopback default
    discovery_tag: str = ""      # Cyclone discovery tag: only participants with the same tag meet
    store_dir: str = "var"       # where nodes keep their local stores (SQLite)
    security_dir: str = ""       # DDS Security: the folder of 'sustainml security init'; "" = an open bus
    node_params: dict[str, dict[str, Any]] = field(default_factory=dict)


def _domain_from_env() -> int | None:
    raw = os.environ.get("SUSTAINML_DOMAIN_ID", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 <= int(raw) <= 232:
        raise ConfigError(f"SUSTAINML_DOMAIN_ID={raw!r}: expected an integer DDS domain id from 0 to 232")
    return int(raw)


def load_config(path: str | Path | None = None, *, domain_id: int | None = None,
                dds_config: str | None = None) -> RuntimeConfig:
    """Merge the embedded defaults, a YAML file (``path`` or ``SUSTAINML_CONFIG``), the environment
    and explicit arguments (from the command line), later ones winning."""
    cfg = RuntimeConfig()
    path = path or os.environ.get("SUSTAINML_CONFIG") or None
    if path:
        cfg = _from_file(Path(path))
    env_domain = _domain_from_env()
    if env_domain is not None:
        cfg.domain_id = env_domain
    if os.environ.get("SUSTAINML_DDS_CONFIG"):
        cfg.dds_config = os.environ["SUSTAINML_DDS_CONFIG"]
    if os.environ.get("SUSTAINML_DISCOVERY_TAG"):
        cfg.discovery_tag = os.environ["SUSTAINML_DISCOVERY_TAG"]
    if os.environ.get("SUSTAINML_STORE_DIR"):
        cfg.store_dir = os.environ["SUSTAINML_STORE_DIR"]
    if os.environ.get("SUSTAINML_SECURITY_DIR"):
        cfg.security_dir = os.environ["SUSTAINML_SECURITY_DIR"]
    if domain_id is not None:
        if not 0 <= domain_id <= 232:
            raise ConfigError(f"domain id {domain_id}: expected an integer from 0 to 232")
        cfg.domain_id = domain_id
    if dds_config:
        cfg.dds_config = dds_config
    return cfg


def _from_file(path: Path) -> RuntimeConfig:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    known = {f.name for f in dataclasses.fields(RuntimeConfig)} | {"nodes"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    nodes = data.pop("nodes", {}) or {}
    if not isinstance(nodes, dict) or not all(isinstance(v, dict) for v in nodes.values()):
        raise ConfigError(f"config file {path}: 'nodes' must map node names to parameter mappings")
    dds = data.get("dds_config", "")
    if dds and not dds.lstrip().startswith("<") and not Path(dds).is_absolute():
        data["dds_config"] = str((path.parent / dds).resolve())
    security = data.get("security_dir", "")
    if security and not Path(security).is_absolute():
        data["security_dir"] = str((path.parent / security).resolve())
    try:
        return RuntimeConfig(**data, node_params=nodes)
    except TypeError as e:
        raise ConfigError(f"config file {path}: {e}") from e


def apply_dds_config(cfg: RuntimeConfig, *, identity: str = "client") -> None:
    """Point Cyclone DDS at the configured XML. Must run before the first participant is created;
    child processes inherit it through ``CYCLONEDDS_URI``. ``identity``: the process's name on a
    secured bus (a node's name, "client" for front ends), which picks its certificate when
    ``cfg.security_dir`` is set; without it a node logs once that the bus is open."""
    # Validate first: a failure leaves the environment as it was.
    security = _security_fragment(cfg, identity)
    tag = f"<Tag>{cfg.discovery_tag}</Tag>" if cfg.discovery_tag else ""
    previous = os.environ.get("CYCLONEDDS_URI", "")
    if previous.find(_SECURITY_MARK) >= 0:
        # Ours, from an earlier call (perhaps for another identity, or inherited from the launcher).
        os.environ["CYCLONEDDS_URI"] = previous = previous[:previous.find(_SECURITY_MARK)]
    if cfg.dds_config:
        src = cfg.dds_config.strip()
        if not src.startswith("<"):
            if not Path(src).is_file():
                raise ConfigError(f"DDS config {src!r} is not a file; give a Cyclone XML file or inline XML")
            src = "file://" + str(Path(src).resolve())
        # Cyclone reads a comma-separated list of configurations, later ones adding to earlier ones:
        # the discovery tag applies to a user's XML too.
        os.environ["CYCLONEDDS_URI"] = src + (f",<Discovery>{tag}</Discovery>" if tag else "")
    elif not os.environ.get("CYCLONEDDS_URI") or os.environ["CYCLONEDDS_URI"].startswith(LOOPBACK_XML[:40]):
        # Unset, or set by us earlier (perhaps with another discovery tag): the embedded default.
        os.environ["CYCLONEDDS_URI"] = LOOPBACK_XML.format(tag=tag)
    if security:
        os.environ["CYCLONEDDS_URI"] += _SECURITY_MARK + security


#: What ``apply_dds_config`` puts before the <Security> element it appends to ``CYCLONEDDS_URI``.
_SECURITY_MARK = ",<Domain Id=\"any\">"
_open_bus_warned = False


def _security_fragment(cfg: RuntimeConfig, identity: str) -> str:
    """The Cyclone <Security> element for ``identity`` (wrapped in its Domain) when the bus is
    secured; "" (and, for a node, one warning per process) when it is open."""
    global _open_bus_warned
    from . import security
    if not cfg.security_dir:
        if security.role_of(identity) not in ("client", "operator") and not _open_bus_warned:
            _open_bus_warned = True
            logging.getLogger("sustainml.security").warning(
                security.OPEN_BUS_WARNING.format(domain=cfg.domain_id))
        return ""
    if cfg.domain_id > security.DOMAIN_MAX:
        raise ConfigError(f"domain {cfg.domain_id}: DDS Security covers domains {security.DOMAIN_MIN} to "
                          f"{security.DOMAIN_MAX} only (Cyclone's access control); choose one of those")
    security.require_secure_binding()
    return security.security_xml(cfg.security_dir, identity) + "</Domain>"


def node_params(params_type: type[P], values: dict[str, Any], *, node: str) -> P:
    """Build a node's parameter dataclass from strings or YAML values, with a readable error for an
    unknown name or a value of the wrong type."""
    fields = {f.name: f for f in dataclasses.fields(params_type)}
    kwargs: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in fields:
            raise ConfigError(f"node {node}: unknown parameter {name!r}; known: {sorted(fields)}")
        default = fields[name].default
        kind = type(default) if default is not dataclasses.MISSING else str
        try:
            if kind is bool and isinstance(raw, str):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                kwargs[name] = raw.lower() in ("true", "1", "yes")
            else:
                kwargs[name] = kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"node {node}: parameter {name}={raw!r} is not a {kind.__name__}") from None
    return params_type(**kwargs)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) stays on this machine: ``localhost``, 127.0.0.0/8, ``::1``.
    Other names are not resolved: a name that merely points here counts as remote."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
