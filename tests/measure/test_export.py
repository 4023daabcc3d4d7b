"""ONNX export parity for every family: onnxruntime's outputs equal PyTorch's within 1e-4 on
a batch of 5 (the export traced a batch of 2 and checked 3: the batch axis is dynamic); the
opset is stored; the latency record of ``archopt.measure.benchmark_latency``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import archopt
from archopt.measure import benchmark_latency, latency_columns
from tests.families import FAMILIES

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed "
                           "(pip install 'archopt[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (the onnx extra) is not installed")

ATOL = 1e-4



@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_round_trip(cli, families, family, tmp_path):
    out = tmp_path / "m.onnx"
    res = cli("export", families[family], "--format", "onnx", "--out", out, "--opset", "18",
              "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["opset"] == 18 and info["batch"] == "dynamic" and info["max_abs_diff"] <= ATOL
    assert out.stat().st_size == info["bytes"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temp file left
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["opset"]) == 18 and meta["batch"] == "dynamic"
    assert json.loads(meta["archopt_spec"])["space"] in ("resnet", "mlp", "densenet")
    assert any(o.domain in ("", "ai.onnx") and o.version == 18 for o in proto.opset_import)

    model = archopt.load_model(families[family])
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch"
    x = torch.randn(5, *model.archopt_input_shape)
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= ATOL


def test_an_opset_the_exporter_cannot_write_is_refused(cli, families, tmp_path):
    res = cli("export", families["latent"], "--out", tmp_path / "m.onnx", "--opset", "17")
    assert res.exit_code == 2 and "opset 17 is below 18" in res.stderr
    assert not (tmp_path / "m.onnx").exists()
    res = cli("export", families["latent"], "--out", tmp_path / "m.onnx", "--opset", "20",
              "--json")
    assert res.exit_code == 0, res.output
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [20]


def test_fixed_batch(families, tmp_path):
    info = archopt.export_onnx(families["latent"], tmp_path / "m.onnx", batch_size=4)
    assert info["batch"] == 4 and info["check_batch"] == 4
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == 4


def test_latency_record_names_threads_and_both_runtimes(families):
    model = archopt.load_model(families["trained"])
    rec = benchmark_latency(model, model.archopt_input_shape, batch_sizes=(1, 8), threads=1,
                            min_run_time=0.01)
    assert rec["threads"] == 1 and rec["batch_sizes"] == [1, 8]
    for runtime in ("torch", "onnxruntime"):
        for b in ("1", "8"):
            r = rec[runtime][b]
            assert r["median_ms"] > 0 and r["ms_per_example"] == pytest.approx(
                r["median_ms"] / int(b))
    cols = latency_columns(rec)
    assert cols["latency_ms"] == rec["torch"]["1"]["ms_per_example"]
    assert cols["latency_ms_b8"] == rec["torch"]["8"]["ms_per_example"]
    assert cols["latency_ms_onnxruntime"] == rec["onnxruntime"]["1"]["ms_per_example"]
    assert "1 thread" in cols["latency_device"] and cols["latency_threads"] == 1
    bare = benchmark_latency(model, model.archopt_input_shape, batch_sizes=(1,),
                             min_run_time=0.01, onnxruntime=False)
    assert "onnxruntime" not in bare and "latency_ms_onnxruntime" not in latency_columns(bare)


class _DataDependent(torch.nn.Module):
    """Python control flow on a tensor's value: torch.export cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if float(x.sum()) > 0 else x


def test_a_model_onnx_cannot_take_keeps_the_torch_figures():
    rec = benchmark_latency(_DataDependent(), (4,), batch_sizes=(1,), min_run_time=0.01)
    assert rec["torch"]["1"]["median_ms"] > 0
    assert "onnxruntime" not in rec and "could not export" in rec["onnxruntime_error"]
