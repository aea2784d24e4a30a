"""DDS Security for the pipeline: the operator's CA, one certificate per identity, the governance
and permissions documents, and the Cyclone XML that makes a participant use them.

A secured bus is standard OMG DDS Security 1.1 as Cyclone DDS implements it (its ``dds_security_auth``,
``_ac`` and ``_crypto`` plugins): a participant joins only with a certificate of the operator's CA
(authentication), may publish or subscribe only the topics its signed permissions list (access
control), and everything on the wire is encrypted (rtps, discovery, liveliness and every topic).

``sustainml security init DIR`` writes, for a list of identities (a node's name; ``client`` for the
front ends; ``operator``)::

    DIR/ca.pem                          the CA certificate: every host
    DIR/ca.key                          the CA's private key: stays with the operator, never copied
    DIR/governance.p7s                  the domain rules, signed by the CA: every host
    DIR/identities/NAME/cert.pem        NAME's certificate (subject CN=NAME)
    DIR/identities/NAME/key.pem         NAME's private key: only the host that runs NAME
    DIR/identities/NAME/permissions.p7s what NAME may publish and subscribe, signed by the CA

Who may publish what comes from the role of an identity (``ROLES``): the part of its name before
``@`` for a node (``hw_constraints@gpu1`` is a hardware node), ``client`` or ``operator`` otherwise.

The XML documents are written by hand: no maintained Python library writes DDS Security governance
or permissions files. Certificates and S/MIME signatures use ``cryptography``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from .exceptions import ConfigError

__all__ = ["ROLES", "Role", "init_security", "governance_xml", "permissions_xml", "security_xml", "identity_dir",
           "identity_folder", "role_of", "require_secure_binding", "secure_binding_dir", "use_secure_binding",
           "add_cli", "OPEN_BUS_WARNING", "DOMAIN_MIN", "DOMAIN_MAX"]

ORGANISATION = "SustainML"
#: Domain ids the documents cover: every id Cyclone's access-control plugin accepts (0 to 230; the
#: configuration accepts up to 232), so that one set of documents serves any domain (tests use private ones).
DOMAIN_MIN, DOMAIN_MAX = 0, 230

OPEN_BUS_WARNING = (
    "the DDS bus is OPEN (no security_dir / SUSTAINML_SECURITY_DIR): any host that reaches domain {domain} "
    "can join, read every task and result, and forge measurements, footprints, results, node status and "
    "cancellations; see README 'Security: a secured bus' (sustainml security init)")


@dataclass(frozen=True)
class Role:
    """What an identity may publish and subscribe: DDS topic names, fnmatch patterns allowed."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _roles() -> dict[str, Role]:
    from typing import Any

    from . import topics as t

    def replies(*services: t.ServiceSpec[Any, Any]) -> list[str]:
        return [s.reply_topic.name for s in services]

    every = [spec.name for spec in t.ALL_TOPICS] + [
        topic.name for s in t.ALL_SERVICES for topic in (s.request_topic, s.reply_topic)]
    requests = [s.request_topic.name for s in t.ALL_SERVICES]
    node = [t.NODE_STATUS.name]   # every node heartbeats
    nodes: dict[str, list[t.TopicSpec[Any]]] = {
        # The orchestrator republishes stored inputs and measurements when it answers an iteration.
        "orchestrator": [t.USER_INPUT, t.ENCODED_TASK, t.MODEL_CANDIDATES, t.HARDWARE_MEASUREMENT,
                         t.TASK_STATUS, t.TASK_RESULT, t.NODE_CONTROL],
        "task_encoder": [t.ENCODED_TASK],
        "model_provider": [t.MODEL_CANDIDATES],
        "hw_constraints": [t.HARDWARE_MEASUREMENT, t.HARDWARE_INVENTORY],
        "carbon_tracker": [t.CARBON_FOOTPRINT],
    }
    served = {"orchestrator": replies(t.SUBMIT, t.RESULTS, t.EVIDENCE, t.NOTE),
              "task_encoder": replies(t.ENCODE),
              "model_provider": replies(t.CATALOGUE, t.EXPORT_ONNX),
              "hw_constraints": replies(t.INVENTORY)}
    roles = {kind: Role(tuple(node + [s.name for s in specs] + served.get(kind, [])), tuple(every))
             for kind, specs in nodes.items()}
    # Front ends (CLI, Python API, web, launcher, sustainml.tracking): requests, a cancel, a user's
    # stage records and training forecasts; they read results, progress and node status.
    client_publish = tuple(requests + [t.NODE_CONTROL.name, t.STAGE_RECORD.name, t.TRAINING_FORECAST.name])
    roles["client"] = Role(client_publish, tuple(
        [t.TASK_RESULT.name, t.TASK_STATUS.name, t.NODE_STATUS.name, t.HARDWARE_INVENTORY.name,
         t.TRAINING_FORECAST.name] + [s.reply_topic.name for s in t.ALL_SERVICES]))
    # The operator's client also reads every topic (``sustainml echo``).
    roles["operator"] = Role(client_publish, tuple(every))
    return roles


ROLES: dict[str, Role] = _roles()


def role_of(identity: str) -> str:
    """The role of an identity: a node kind (before ``@``), ``operator``, or ``client`` for any other name."""
    kind = identity.split("@", 1)[0]
    return kind if kind in ROLES else "client"


# ------------------------------------------------------------------------- documents
def _domains() -> str:
    return f"<domains><id_range><min>{DOMAIN_MIN}</min><max>{DOMAIN_MAX}</max></id_range></domains>"


def governance_xml() -> str:
    """Unauthenticated participants refused; join, read and write access controlled; discovery,
    liveliness, the RTPS messages and every topic's data encrypted."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_governance.xsd">
  <domain_access_rules>
    <domain_rule>
      {_domains()}
      <allow_unauthenticated_participants>false</allow_unauthenticated_participants>
      <enable_join_access_control>true</enable_join_access_control>
      <discovery_protection_kind>ENCRYPT</discovery_protection_kind>
      <liveliness_protection_kind>ENCRYPT</liveliness_protection_kind>
      <rtps_protection_kind>ENCRYPT</rtps_protection_kind>
      <topic_access_rules>
        <topic_rule>
          <topic_expression>*</topic_expression>
          <enable_discovery_protection>true</enable_discovery_protection>
          <enable_liveliness_protection>true</enable_liveliness_protection>
          <enable_read_access_control>true</enable_read_access_control>
          <enable_write_access_control>true</enable_write_access_control>
          <metadata_protection_kind>ENCRYPT</metadata_protection_kind>
          <data_protection_kind>ENCRYPT</data_protection_kind>
        </topic_rule>
      </topic_access_rules>
    </domain_rule>
  </domain_access_rules>
</dds>
"""


def permissions_xml(identity: str, role: Role, not_before: datetime.datetime,
                    not_after: datetime.datetime) -> str:
    """One grant: ``identity``'s subject may publish and subscribe its role's topics, nothing else."""
    def topics(names: tuple[str, ...]) -> str:
        return "".join(f"<topic>{escape(n)}</topic>" for n in names)

    fmt = "%Y-%m-%dT%H:%M:%S"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_permissions.xsd">
  <permissions>
    <grant name="{escape(identity)}">
      <subject_name>{escape(_subject(identity))}</subject_name>
      <validity><not_before>{not_before.strftime(fmt)}</not_before><not_after>{not_after.strftime(fmt)}</not_after></validity>
      <allow_rule>
        {_domains()}
        <publish><topics>{topics(role.publish)}</topics></publish>
        <subscribe><topics>{topics(role.subscribe)}</topics></subscribe>
      </allow_rule>
      <default>DENY</default>
    </grant>
  </permissions>
</dds>
"""


def _subject(identity: str) -> str:
    return f"CN={identity},O={ORGANISATION}"


# ------------------------------------------------------------------------- keys and certificates
def _check_identity(identity: str) -> None:
    if not identity or identity in (".", "..") or any(c in identity for c in "/\\,=+<>\"';\n\r\t "):
        raise ConfigError(f"identity {identity!r}: expected a node name such as 'hw_constraints@gpu1' or a "
                          "client name (letters, digits, '_', '-', '.', '@')")


def init_security(directory: str | Path, identities: list[str], *, days: int = 365,
                  renew_ca: bool = False) -> list[Path]:
    """Make (or reuse) the CA in ``directory`` and write the governance and each identity's
    certificate, key and permissions; the files written. An existing CA is reused, so that adding a
    node later keeps every certificate already handed out valid."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    for identity in identities:
        _check_identity(identity)
    if not identities:
        raise ConfigError("no identities: name the nodes (--nodes) and clients (--clients) to admit")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)
    written: list[Path] = []

    def write(path: Path, data: bytes, *, secret: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        written.append(path)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION)])

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_cert_path, ca_key_path = root / "ca.pem", root / "ca.key"
    if ca_cert_path.is_file() and ca_key_path.is_file() and not renew_ca:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{ca_key_path}: expected the EC key that 'sustainml security init' writes")
        ca_key = loaded
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = name(f"{ORGANISATION} operator CA")
        ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(not_before).not_valid_after(not_before + datetime.timedelta(days=10 * 365))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        write(ca_key_path, pem_key(ca_key), secret=True)
        write(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM))

    def signed(document: str) -> bytes:
        from cryptography.hazmat.primitives.serialization import pkcs7
        # S/MIME, detached, with the text/plain header inside the signed content: what Cyclone's
        # access-control plugin verifies (OpenSSL's SMIME_read_PKCS7 + PKCS7_verify with PKCS7_TEXT).
        return (pkcs7.PKCS7SignatureBuilder().set_data(document.encode())
                .add_signer(ca_cert, ca_key, hashes.SHA256())
                .sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature,
                                                     pkcs7.PKCS7Options.Text]))

    write(root / "governance.p7s", signed(governance_xml()))
    for identity in identities:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(identity)).issuer_name(ca_cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        folder = identity_folder(root, identity)
        write(folder / "key.pem", pem_key(key), secret=True)
        write(folder / "cert.pem", cert.public_bytes(serialization.Encoding.PEM))
        write(folder / "permissions.p7s",
              signed(permissions_xml(identity, ROLES[role_of(identity)], not_before, not_after)))
    return written


def identity_folder(root: Path, identity: str) -> Path:
    return root / "identities" / identity


def identity_dir(security_dir: str | Path, identity: str) -> Path:
    """The folder of ``identity``'s certificate, key and permissions. A node started without an
    explicit name (``hw_constraints``) also finds the certificate made for it on this host
    (``hw_constraints@HOST``). ConfigError, one line, when there is none."""
    root = Path(security_dir)
    if not (root / "ca.pem").is_file() or not (root / "governance.p7s").is_file():
        raise ConfigError(f"security_dir {str(root)!r} has no ca.pem and governance.p7s; make them with "
                          "'sustainml security init DIR' and copy them to every host")
    host = os.environ.get("SUSTAINML_HOST") or socket.gethostname()
    candidates = [identity] + ([f"{identity}@{host}"] if "@" not in identity else [])
    for name in candidates:
        folder = identity_folder(root, name)
        if all((folder / f).is_file() for f in ("cert.pem", "key.pem", "permissions.p7s")):
            return folder
    have = sorted(p.name for p in (root / "identities").glob("*")) if (root / "identities").is_dir() else []
    raise ConfigError(f"no certificate for identity {identity!r} in {root / 'identities'} "
                      f"(looked for {', '.join(candidates)}; there: {', '.join(have) or 'none'}); make it with "
                      f"'sustainml security init {root} --nodes {identity}' where the CA key is")


def security_xml(security_dir: str | Path, identity: str) -> str:
    """The Cyclone ``<Security>`` element for ``identity``, to add to the domain's configuration. The
    plugins are Cyclone's own (Debian's libddsc finds them in its ``libddsc0debian`` folder)."""
    root = Path(security_dir).resolve()
    folder = identity_dir(root, identity).resolve()

    def uri(path: Path) -> str:
        return "file:" + escape(str(path))

    return ("<Security>"
            "<Authentication>"
            f"<IdentityCertificate>{uri(folder / 'cert.pem')}</IdentityCertificate>"
            f"<IdentityCA>{uri(root / 'ca.pem')}</IdentityCA>"
            f"<PrivateKey>{uri(folder / 'key.pem')}</PrivateKey>"
            "</Authentication>"
            "<AccessControl>"
            f"<Governance>{uri(root / 'governance.p7s')}</Governance>"
            f"<PermissionsCA>{uri(root / 'ca.pem')}</PermissionsCA>"
            f"<Permissions>{uri(folder / 'permissions.p7s')}</Permissions>"
            "</AccessControl>"
            "</Security>")


# ------------------------------------------------------------------------- the binding
def secure_binding_dir() -> Path:
    """Where install.sh puts the cyclonedds binding built against Debian's Cyclone (with security):
    ``.venv/dds-security``, or ``SUSTAINML_DDS_SECURITY_BINDING``."""
    return Path(os.environ.get("SUSTAINML_DDS_SECURITY_BINDING") or Path(sys.prefix) / "dds-security")


def require_secure_binding() -> None:
    """ConfigError, one line saying how to get it, when the cyclonedds binding in use has no DDS Security."""
    from . import _dds_compat
    if _dds_compat.has_security():
        return
    import cyclonedds
    where = secure_binding_dir()
    how = (f"start with PYTHONPATH={where} (the 'sustainml' command does this itself)" if where.is_dir() else
           "run install.sh as root on Debian (it installs Debian's Cyclone DDS with its security plugins and "
           f"builds the binding into {where})")
    raise ConfigError(f"DDS Security is configured but the cyclonedds binding in use ({Path(cyclonedds.__file__).parent}) "
                      f"was built without it; {how}")


def use_secure_binding(security_dir: str, argv: list[str]) -> None:
    """Called first by the ``sustainml`` command with the configured ``security_dir``: when DDS
    Security is configured and the binding in use lacks it while the secure one is installed, run
    the same command again with that binding first on ``PYTHONPATH``. Processes it starts (the
    launcher's nodes) inherit the variable, so the whole pipeline runs on one binding."""
    if not security_dir:
        return
    from . import _dds_compat
    where = secure_binding_dir()
    if _dds_compat.has_security() or not where.is_dir():
        return   # secure already, or nothing better to offer: apply_dds_config says how to get it
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(where) in paths:
        return   # already tried: the binding there is not secure either; apply_dds_config says so
    os.environ["PYTHONPATH"] = os.pathsep.join([str(where), *paths])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "sustainml.cli", *argv])


# ------------------------------------------------------------------------- the command
def add_cli(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """``sustainml security init DIR --nodes ... [--clients ...]``."""
    p = sub.add_parser("security", help="DDS Security: the operator's CA, each identity's certificate and "
                                        "permissions (README: 'Security: a secured bus')")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("init", help="make the CA (or reuse the one in DIR) and a certificate, key and "
                                        "permissions per identity")
    q.add_argument("dir", help="folder to write (ca.key stays there; see README for what goes to which host)")
    q.add_argument("--nodes", default=",".join(_default_nodes()),
                   help="comma-separated node names, hardware nodes as hw_constraints@HOST "
                        "(default: the five nodes of launch/pipeline.yaml on this host: %(default)s)")
    q.add_argument("--clients", default="client,operator",
                   help="comma-separated client identities (default %(default)s; 'operator' may also read every topic)")
    q.add_argument("--days", type=int, default=365, help="validity of the certificates and permissions (default 365)")
    q.set_defaults(func=_cmd_init)


def _default_nodes() -> list[str]:
    host = os.environ.get("SUSTAINML_HOST") or socket.gethostname()
    return ["orchestrator", "task_encoder", "model_provider", f"hw_constraints@{host}", "carbon_tracker"]


def _cmd_init(args: "argparse.Namespace") -> int:
    names = [n.strip() for n in f"{args.nodes},{args.clients}".split(",") if n.strip()]
    if args.days < 1:
        raise ConfigError(f"--days {args.days}: expected a number of days of 1 or more")
    root = Path(args.dir)
    init_security(root, list(dict.fromkeys(names)), days=args.days)
    print(f"wrote {root}: ca.pem, governance.p7s and identities/ for {', '.join(dict.fromkeys(names))}")
    print(f"every host: ca.pem, governance.p7s and identities/NAME/ of the identities it runs; "
          f"{root / 'ca.key'} stays with the operator")
    print(f"secured: SUSTAINML_SECURITY_DIR={root.resolve()} sustainml launch")
    return 0
