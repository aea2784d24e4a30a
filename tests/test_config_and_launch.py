"""Configuration precedence and errors, launch files, and the launcher's Ctrl-C."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sustainml.config import load_config, node_params
from sustainml.exceptions import ConfigError, LaunchError
from sustainml.launch import load_launch

from conftest import ROOT


def test_precedence_defaults_file_environment_arguments(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("SUSTAINML_DOMAIN_ID", raising=False)
    monkeypatch.delenv("SUSTAINML_CONFIG", raising=False)
    assert load_config().domain_id == 0
    config = tmp_path / "sustainml.yaml"
    config.write_text("domain_id: 5\ndds_config: cyclone.xml\nnodes:\n  hw_constraints: {window_s: 2}\n")
    from_file = load_config(config)
    assert from_file.domain_id == 5
    assert from_file.dds_config == str(tmp_path / "cyclone.xml")   # relative to the file
    assert from_file.node_params == {"hw_constraints": {"window_s": 2}}
    monkeypatch.setenv("SUSTAINML_DOMAIN_ID", "7")
    assert load_config(config).domain_id == 7
    assert load_config(config, domain_id=9).domain_id == 9


@pytest.mark.parametrize("content, words", [
    ("domain: 5\n", "unknown keys ['domain']"),
    ("[1, 2]\n", "expected a mapping"),
    ("nodes: [a]\n", "'nodes' must map node names"),
    ("domain_id: [\n", "not valid YAML"),
])
def test_bad_config_files_are_explained(tmp_path: Path, content, words):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_bad_domain_in_the_environment(monkeypatch):
    monkeypatch.setenv("SUSTAINML_DOMAIN_ID", "lots")
    with pytest.raises(ConfigError, match="expected an integer DDS domain id from 0 to 232"):
        load_config()


def test_node_parameters_are_typed_and_checked():
    @dataclass
    class Params:
        window_s: float = 1.0
        verbose: bool = False

    assert node_params(Params, {"window_s": "0.5", "verbose": "yes"}, node="n") == Params(0.5, True)
    with pytest.raises(ConfigError, match="unknown parameter 'windows'"):
        node_params(Params, {"windows": 1}, node="n")
    with pytest.raises(ConfigError, match="window_s='fast' is not a float"):
        node_params(Params, {"window_s": "fast"}, node="n")


@pytest.mark.parametrize("content, words", [
    ("nodes: []\n", "non-empty 'nodes' list"),
    ("nodes:\n  - node: orchestrator\n  - node: orchestrator\n", "a second node named 'orchestrator'"),
    ("nodes:\n  - node: orchestrator\n    colour: red\n", "unknown keys ['colour']"),
    ("dds_config: missing.xml\nnodes:\n  - node: orchestrator\n", "dds_config 'missing.xml' is not a file"),
    ("nodes:\n  - cmd: ''\n", "'cmd' must be a non-empty list"),
])
def test_bad_launch_files_are_explained(tmp_path: Path, content, words):
    path = tmp_path / "launch.yaml"
    path.write_text(content)
    with pytest.raises(LaunchError) as error:
        load_launch(path)
    assert words in str(error.value)


def test_shipped_launch_files_load():
    for path in [ROOT / "launch" / "pipeline.yaml", *(ROOT / "launch" / "multi_host").glob("*.yaml")]:
        assert load_launch(path).nodes


@pytest.mark.pipeline
def test_ctrl_c_stops_every_node_and_exits_zero(dds):
    proc = subprocess.Popen([sys.executable, "-m", "sustainml.cli", "launch"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids, ready = set(), set()
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if "started (pid" in line:
                pids.add(int(line.split("pid ")[1].rstrip(")\n")))
            if "] ready: " in line:   # the launcher saw the node's serving NodeStatus
                ready.add(line.split("]")[0])
            if len(ready) == 5 or time.monotonic() > deadline:
                break
        assert len(ready) == 5, ready
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert out.count("shutting down") >= 5
    for pid in pids:   # no node process left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_discovery_tag_applies_to_a_users_xml_too(tmp_path: Path, monkeypatch):
    from sustainml.config import RuntimeConfig, apply_dds_config
    xml = tmp_path / "cyclone.xml"
    xml.write_text("<CycloneDDS/>")
    monkeypatch.delenv("CYCLONEDDS_URI", raising=False)
    apply_dds_config(RuntimeConfig(dds_config=str(xml), discovery_tag="t42"))
    assert os.environ["CYCLONEDDS_URI"] == f"file://{xml},<Discovery><Tag>t42</Tag></Discovery>"
    apply_dds_config(RuntimeConfig(dds_config=str(xml)))
    assert os.environ["CYCLONEDDS_URI"] == f"file://{xml}"
