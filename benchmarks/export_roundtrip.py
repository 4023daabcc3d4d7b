"""ONNX export round trip for every model family archopt writes, and torch vs onnxruntime
latency.

For each family (the result folders of ``tests/families.py``, made by the verbs themselves on
the embedded digits / the synthetic regression target, trained a little longer than in the
tests): ``archopt.export_onnx`` (dynamic batch, opset 18, atomic write), then

- ``max_abs_diff``: ``max |onnxruntime - torch|`` over the outputs of a batch of
  ``--batch`` inputs (image families: the first digits test images, normalised as in training;
  the latent MLP: uniform [-1, 1] features), a batch size other than the one traced at export;
- ``bytes``: the ``.onnx`` file's size; ``export_cpu_s``: CPU seconds of the export + check;
- ``latency``: :func:`archopt.measure.benchmark_latency` -- ``torch.utils.benchmark``
  (``blocked_autorange``) and onnxruntime, batch 1 and 64, ``--threads`` intra-op threads.

Writes ``benchmarks/results/export_roundtrip.json``. Timed figures want idle cores
(run it alone on the machine):

    python benchmarks/export_roundtrip.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/families.py: the same family folders the tests export

from tests.families import FAMILIES, make_family  # noqa: E402

import archopt  # noqa: E402
from archopt.measure import benchmark_latency  # noqa: E402
from archopt.runs import atomic_write_json, environment_info  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "export_roundtrip.json"


def _inputs(model: torch.nn.Module, n: int) -> torch.Tensor:
    """A real batch for an image family (digits test images, normalised); uniform [-1, 1]
    features for the latent MLP (its data's range)."""
    meta = model.archopt_meta
    if "mean" not in meta:
        return torch.rand((n, *model.archopt_input_shape),
                          generator=torch.Generator().manual_seed(0)) * 2 - 1
    from archopt.data import load_dataset

    ds = load_dataset("digits")
    x = ds.test_x[:n].float() / 255.0
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    return (x - mean) / std


def one(family: str, folder: Path, work: Path, batch: int, threads: int,
        min_run_time: float) -> dict[str, Any]:
    import onnxruntime as ort

    out = work / f"{family}.onnx"
    t0 = time.process_time()
    info = archopt.export_onnx(folder, out)
    export_cpu = time.process_time() - t0
    model = archopt.load_model(folder)
    x = _inputs(model, batch)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    lat = benchmark_latency(model, model.archopt_input_shape, threads=threads,
                            min_run_time=min_run_time)
    row = {"family": family, "kind": info["kind"], "space": model.archopt_spec.space,
           "params": sum(p.numel() for p in model.parameters()),
           "input_shape": list(model.archopt_input_shape), "opset": info["opset"],
           "bytes": out.stat().st_size, "export_cpu_s": round(export_cpu, 3),
           "check_batch": batch, "max_abs_diff": float(abs(got - want).max()),
           "max_abs_output": float(abs(want).max()),
           "torch_ms": {b: r["median_ms"] for b, r in lat["torch"].items()},
           "onnxruntime_ms": {b: r["median_ms"] for b, r in lat["onnxruntime"].items()},
           "latency": lat}
    print(f"{family:>19}: {row['bytes']:>9,} B  max|ort-torch| {row['max_abs_diff']:.2e} "
          f"(batch {batch})  torch b1 {row['torch_ms']['1']:.3f} ms / b64 "
          f"{row['torch_ms']['64']:.3f} ms  ort b1 {row['onnxruntime_ms']['1']:.3f} ms / b64 "
          f"{row['onnxruntime_ms']['64']:.3f} ms  export {export_cpu:.1f} s CPU", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--batch", type=int, default=256, help="inputs compared (not 2 or 3)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--min-run-time", type=float, default=0.3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="archopt-export-") as tmp:
        work = Path(tmp)
        for fam in FAMILIES:
            t = time.process_time()
            folder = make_family(fam, work / "runs", epochs=args.epochs, steps=12)
            made = time.process_time() - t
            rows.append({**one(fam, folder, work, args.batch, args.threads, args.min_run_time),
                         "make_cpu_s": round(made, 3)})
    result = {"benchmark": "export_roundtrip", "threads": args.threads,
              "batch_sizes": [1, 64], "check_batch": args.batch, "epochs": args.epochs,
              "rows": rows, "wall_s": round(time.perf_counter() - t0, 1),
              "cpu_s": round(time.process_time() - c0, 1), "environment": environment_info()}
    import onnx
    import onnxruntime

    result["environment"].update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    atomic_write_json(args.out, result)
    print(f"wrote {args.out} ({result['wall_s']} s wall, {result['cpu_s']} s CPU)")


if __name__ == "__main__":
    main()
