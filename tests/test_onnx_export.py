"""ONNX export of catalogue models: the graph ONNX Runtime runs computes what the torch model computes,
and a partner gets it from the model provider over DDS without Python on its side."""

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from sustainml import Client
from sustainml.exceptions import InvalidProblem
from sustainml.launch import load_launch
from sustainml.models import zoo
from sustainml.models.errors import UnknownModel
from sustainml.models.onnx_export import export_onnx

from conftest import ROOT, RunningPipeline


def run_onnx(blob: bytes, inputs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def initializer_count(blob: bytes) -> int:
    return sum(int(np.prod(t.dims)) for t in onnx.load_from_string(blob).graph.initializer)


@pytest.mark.parametrize("name", ["tabular_mlp", "squeezenet1_1", "bert_tiny", "dlinear"])
def test_onnx_runtime_computes_what_torch_computes_at_any_batch(name: str):
    exported = export_onnx(name)
    workload = zoo.build(name)
    module = getattr(workload.module, "onnx_module", workload.module).eval()
    for batch in (1, 3):
        x = workload.inputs(batch)
        expected = module(x)
        expected = expected if isinstance(expected, torch.Tensor) else expected[0]
        np.testing.assert_allclose(run_onnx(exported.onnx, x.numpy()), expected.detach().numpy(),
                                   rtol=1e-3, atol=1e-4)
    assert exported.input_dtype == ("int64" if name == "bert_tiny" else "float32")  # token ids stay integers
    assert initializer_count(exported.onnx) == pytest.approx(sum(p.numel() for p in module.parameters()), rel=0.01)


def test_a_fixed_batch_and_another_input_shape():
    exported = export_onnx("tabular_mlp", input_shape=(12,), batch_size=4)
    assert exported.input_shape == (12,)
    graph_input = onnx.load_from_string(exported.onnx).graph.input[0]
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [4, 12]


def test_unknown_models_are_named():
    with pytest.raises(UnknownModel, match="resnet1000"):
        export_onnx("resnet1000")


@pytest.mark.slow
def test_the_cli_writes_a_file(tmp_path):
    out = tmp_path / "mlp.onnx"
    done = subprocess.run([sys.executable, "-m", "sustainml.cli", "export-onnx", "tabular_mlp", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "input 'input' float32[N, 8]" in done.stdout
    assert run_onnx(out.read_bytes(), np.zeros((2, 8), np.float32)).shape == (2, 1)
    bad = subprocess.run([sys.executable, "-m", "sustainml.cli", "export-onnx", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope" in bad.stderr


@pytest.mark.slow
def test_the_model_provider_serves_onnx_over_dds(dds):
    description = load_launch(ROOT / "launch" / "pipeline.yaml")
    description.nodes = [n for n in description.nodes if n.name == "model_provider"]
    running = RunningPipeline(description).start()
    try:
        with Client() as client:
            blob = client.export_onnx("tabular_mlp", timeout_s=120)
            with pytest.raises(InvalidProblem, match="unknown model 'gpt5': the model zoo knows .*tabular_mlp"):
                client.export_onnx("gpt5", timeout_s=30)
    finally:
        running.stop()
    workload = zoo.build("tabular_mlp")
    x = workload.inputs(2)
    np.testing.assert_allclose(run_onnx(blob, x.numpy()), workload.module.eval()(x).detach().numpy(),
                               rtol=1e-3, atol=1e-4)
