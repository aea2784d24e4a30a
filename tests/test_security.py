"""DDS Security: the operator's CA and documents, the configuration that uses them, and a secured
pipeline that a rogue participant cannot join, read or forge on.

The secured tests need Debian's Cyclone DDS with its security plugins and the binding built against
it (``.venv/dds-security``); install.sh installs both when run as root on Debian. Without them they
skip and say which is missing."""

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sustainml import config, msg, security, topics
from sustainml.bus import Participant
from sustainml.config import RuntimeConfig, apply_dds_config, load_config
from sustainml.exceptions import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = sorted(Path("/usr/lib").glob("*/libddsc0debian/libdds_security_auth.so"))
BINDING = security.secure_binding_dir()
HOST = socket.gethostname()
NODES = ["orchestrator", "task_encoder", "model_provider", f"hw_constraints@{HOST}", "carbon_tracker"]

needs_secure_dds = pytest.mark.skipif(
    not PLUGINS or not (BINDING / "cyclonedds").is_dir(),
    reason=("Debian's Cyclone DDS security plugins (apt: libddsc0debian) are not installed" if not PLUGINS else
            f"the cyclonedds binding with DDS Security is not built in {BINDING} (install.sh builds it)"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keys")
    security.init_security(root, NODES + ["client", "operator", "intruder"], days=2)
    return root


@pytest.fixture(autouse=True)
def _fresh_dds_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """apply_dds_config writes CYCLONEDDS_URI: keep it to each test."""
    monkeypatch.delenv("CYCLONEDDS_URI", raising=False)
    monkeypatch.delenv("SUSTAINML_SECURITY_DIR", raising=False)


# ------------------------------------------------------------------ documents and configuration
def _signed_content(path: Path) -> str:
    """The document inside an S/MIME file (the text part), without checking the signature."""
    text = path.read_text()
    start = text.index("<?xml")
    return text[start:text.index("</dds>", start) + len("</dds>")]


def test_init_writes_one_ca_and_per_identity_files(keys: Path) -> None:
    for name in ("ca.pem", "ca.key", "governance.p7s"):
        assert (keys / name).is_file()
    assert (keys / "ca.key").stat().st_mode & 0o077 == 0, "the CA key is readable by others"
    for identity in NODES + ["client"]:
        folder = keys / "identities" / identity
        assert {p.name for p in folder.iterdir()} == {"cert.pem", "key.pem", "permissions.p7s"}
        assert (folder / "key.pem").stat().st_mode & 0o077 == 0
        assert f"<subject_name>CN={identity},O=SustainML</subject_name>" in _signed_content(folder / "permissions.p7s")


def test_the_command_adds_identities_under_the_same_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    parser = argparse.ArgumentParser(prog="sustainml")
    security.add_cli(parser.add_subparsers())   # what `sustainml security` is (the full CLI imports every node)

    def run(*argv: str) -> int:
        args = parser.parse_args(["security", "init", str(tmp_path), *argv])
        result: int = args.func(args)
        return result

    assert run("--nodes", "orchestrator", "--clients", "client") == 0
    ca = (tmp_path / "ca.pem").read_bytes()
    assert run("--nodes", "hw_constraints@gpu1", "--clients", "") == 0
    assert (tmp_path / "ca.pem").read_bytes() == ca, "a second run replaced the CA: every certificate out there broke"
    assert {p.name for p in (tmp_path / "identities").iterdir()} == {"orchestrator", "client", "hw_constraints@gpu1"}
    assert "ca.key stays with the operator" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="'bad name'"):
        run("--nodes", "bad name", "--clients", "")


def test_certificates_name_their_identity_and_chain_to_the_ca(keys: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    ca = x509.load_pem_x509_certificate((keys / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((keys / "identities" / "orchestrator" / "cert.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "O=SustainML,CN=orchestrator"
    assert cert.issuer == ca.subject
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


def test_governance_refuses_strangers_and_encrypts_everything(keys: Path) -> None:
    governance = _signed_content(keys / "governance.p7s")
    assert "<allow_unauthenticated_participants>false</allow_unauthenticated_participants>" in governance
    for element in ("rtps_protection_kind", "discovery_protection_kind", "liveliness_protection_kind",
                    "metadata_protection_kind", "data_protection_kind"):
        assert f"<{element}>ENCRYPT</{element}>" in governance
    assert "<enable_write_access_control>true</enable_write_access_control>" in governance


def _publishes(keys: Path, identity: str) -> set[str]:
    document = _signed_content(keys / "identities" / identity / "permissions.p7s")
    publish = re.search(r"<publish>(.*?)</publish>", document, re.S)
    assert publish
    return set(re.findall(r"<topic>(.*?)</topic>", publish.group(1)))


def test_only_each_topics_producers_may_publish_it(keys: Path) -> None:
    measurement, footprint = topics.HARDWARE_MEASUREMENT.name, topics.CARBON_FOOTPRINT.name
    result = topics.TASK_RESULT.name
    assert measurement in _publishes(keys, f"hw_constraints@{HOST}")
    assert footprint in _publishes(keys, "carbon_tracker")
    assert result in _publishes(keys, "orchestrator")
    for identity in ("client", "task_encoder", "model_provider", "carbon_tracker"):
        assert measurement not in _publishes(keys, identity)
    for identity in ("client", f"hw_constraints@{HOST}"):
        assert not {footprint, result, topics.USER_INPUT.name} & _publishes(keys, identity)
    assert topics.SUBMIT.request_topic.name in _publishes(keys, "client")
    assert topics.SUBMIT.reply_topic.name not in _publishes(keys, "client")


def test_signatures_verify_with_openssl(keys: Path) -> None:
    openssl = subprocess.run(["which", "openssl"], capture_output=True, text=True).stdout.strip()
    if not openssl:
        pytest.skip("no openssl command to check the S/MIME signatures with")
    for document in (keys / "governance.p7s", keys / "identities" / "client" / "permissions.p7s"):
        done = subprocess.run([openssl, "smime", "-verify", "-text", "-in", str(document), "-CAfile",
                               str(keys / "ca.pem"), "-out", os.devnull], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_a_missing_certificate_is_one_readable_line(keys: Path) -> None:
    with pytest.raises(ConfigError, match=r"no certificate for identity 'stranger'.*sustainml security init"):
        security.identity_dir(keys, "stranger")
    with pytest.raises(ConfigError, match="has no ca.pem"):
        security.identity_dir(keys / "identities", "client")


def test_a_node_without_a_host_finds_its_certificate_for_this_host(keys: Path) -> None:
    assert security.identity_dir(keys, "hw_constraints").name == f"hw_constraints@{HOST}"


def test_security_dir_comes_from_the_environment_and_the_file(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sustainml.yaml").write_text("security_dir: keys\n")
    assert load_config(tmp_path / "sustainml.yaml").security_dir == str((tmp_path / "keys").resolve())
    monkeypatch.setenv("SUSTAINML_SECURITY_DIR", "/elsewhere")
    assert load_config(tmp_path / "sustainml.yaml").security_dir == "/elsewhere"


def test_a_binding_without_security_is_refused_with_how_to_get_it(keys: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sustainml._dds_compat.has_security", lambda: False)
    with pytest.raises(ConfigError, match="built without it; .*(PYTHONPATH|install.sh)"):
        apply_dds_config(RuntimeConfig(domain_id=5, security_dir=str(keys)), identity="orchestrator")
    assert "CYCLONEDDS_URI" not in os.environ


def test_the_security_section_names_the_identitys_files(keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sustainml._dds_compat.has_security", lambda: True)
    apply_dds_config(RuntimeConfig(domain_id=5, security_dir=str(keys)), identity="carbon_tracker")
    uri = os.environ["CYCLONEDDS_URI"]
    assert f"<IdentityCertificate>file:{keys.resolve()}/identities/carbon_tracker/cert.pem<" in uri
    assert f"<Governance>file:{keys.resolve()}/governance.p7s<" in uri
    # Applied again (another identity, the launcher's children): one Security section, the new one.
    apply_dds_config(RuntimeConfig(domain_id=5, security_dir=str(keys)), identity="client")
    assert os.environ["CYCLONEDDS_URI"].count("<Security>") == 1
    assert "/identities/client/" in os.environ["CYCLONEDDS_URI"]
    with pytest.raises(ConfigError, match="domains 0 to 230"):
        apply_dds_config(RuntimeConfig(domain_id=231, security_dir=str(keys)), identity="client")


def test_an_open_bus_is_announced_once_by_a_node(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(config, "_open_bus_warned", False)
    with caplog.at_level(logging.WARNING, logger="sustainml.security"):
        apply_dds_config(RuntimeConfig(domain_id=7), identity="client")
        assert not caplog.records, "a client is not the place for the warning"
        apply_dds_config(RuntimeConfig(domain_id=7), identity="orchestrator")
        apply_dds_config(RuntimeConfig(domain_id=7), identity="orchestrator")
    assert len(caplog.records) == 1
    assert "OPEN" in caplog.text and "forge" in caplog.text and "domain 7" in caplog.text


# ------------------------------------------------------------------ a secured pipeline
def _secure_env(keys: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CYCLONEDDS_URI", "PYTHONPATH")}
    env.update(SUSTAINML_SECURITY_DIR=str(keys), SUSTAINML_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    return env


class _Launch:
    """``sustainml launch`` as a user runs it (a subprocess, the command re-running itself on the
    secure binding), its output kept."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "sustainml.cli", "launch"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found := re.search(pattern, line):
                    return found
            assert self.proc.poll() is None, "the launcher ended:\n" + "\n".join(self.lines[-30:])
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r} in {timeout_s} s:\n" + "\n".join(self.lines[-30:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


_INTRUDER = """
import sys
from sustainml.bus import Participant
from sustainml import topics
from sustainml.exceptions import SustainMLError
bus = Participant(identity=sys.argv[1])
try:
    bus.publisher(topics.HARDWARE_MEASUREMENT)
    print("writer made")
except SustainMLError as e:   # the bus's one line for DDS_RETCODE_NOT_ALLOWED_BY_SECURITY
    print("refused:", e)
bus.close()
"""


@pytest.mark.slow
@pytest.mark.pipeline
@needs_secure_dds
def test_a_secured_pipeline_admits_only_its_nodes(keys: Path, dds: dict[str, str]) -> None:
    env = _secure_env(keys)
    launch = _Launch(env)
    try:
        for node in ("orchestrator", "task_encoder", "model_provider", "hw_constraints", "carbon_tracker"):
            launch.wait_for(rf"ready: {node}\S* serves", 150)
        assert not any("OPEN" in line for line in launch.lines)

        # A rogue: the PyPI binding, no certificate, on the same domain and discovery tag.
        rogue = Participant(load_config())
        seen: list[object] = []   # what others wrote (its own forgeries reach its readers locally)
        read = {spec.name for spec in (topics.TASK_RESULT, topics.TASK_STATUS, topics.NODE_STATUS,
                                       topics.USER_INPUT, topics.HARDWARE_MEASUREMENT, topics.CARBON_FOOTPRINT)}
        for name in read:
            spec = topics.by_name(name)
            rogue.subscribe(spec, lambda sample, sender: sender != rogue.guid and seen.append(sample),
                            with_sender=True)
        forgers = {spec.name: rogue.publisher(spec) for spec in (
            topics.HARDWARE_MEASUREMENT, topics.TASK_RESULT, topics.NODE_STATUS, topics.NODE_CONTROL)}

        submit = subprocess.Popen(
            [sys.executable, "-m", "sustainml.cli", "submit", "examples/tool_wear_tabular.yaml", "--json",
             "--quiet", "--budget", "3", "--timeout", "120"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Valid certificates whose permissions do not list hardware_measurement (a client; the operator,
        # who may read it): each tries to write it, meanwhile, from its own process.
        intruders = {identity: subprocess.Popen(
            [sys.executable, "-c", _INTRUDER, identity], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**env, "PYTHONPATH": str(BINDING)}) for identity in ("intruder", "operator")}
        task = launch.wait_for(r"task ([0-9a-f]{32})/(\d+)", 60)
        task_id = msg.TaskId(problem_id=task.group(1), iteration=int(task.group(2)))
        for _ in range(10):   # forge for a while, each forgery the issue found on an open bus
            forgers[topics.HARDWARE_MEASUREMENT.name].publish(msg.HardwareMeasurement(
                task_id=task_id, host=HOST, plan_done=True, plan_note="forged"))
            forgers[topics.TASK_RESULT.name].publish(msg.TaskResult(
                task_id=task_id, state=msg.TaskState.TASK_DONE, explanation="Recommended: rogue_model"))
            forgers[topics.NODE_STATUS.name].publish(msg.NodeStatus(
                node=f"hw_constraints@{HOST}", kind="hw_constraints", host=HOST,
                state=msg.NodeState.NODE_ERROR, task_id=task_id, message="forged failure"))
            forgers[topics.NODE_CONTROL.name].publish(msg.NodeControl(task_id=task_id, reason="forged cancel"))
            time.sleep(0.2)

        out, err = submit.communicate(timeout=150)
        assert submit.returncode == 0, err
        result = json.loads(out)
        assert result["status"] == "done", result
        assert "rogue" not in result["explanation"]
        assert seen == [], f"the rogue read {len(seen)} samples of a secured bus"
        # Its writers matched nothing but its own readers (those of the topics it reads itself).
        matched = {name: forger.matched() for name, forger in forgers.items()}
        assert matched == {name: int(name in read) for name in forgers}, matched
        rogue.close()

        for identity, proc in intruders.items():   # their writers were refused
            stdout, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr
            assert stdout.startswith("refused:") and "NOT_ALLOWED_BY_SECURITY" in stdout, (identity, stdout)
    finally:
        launch.stop()
