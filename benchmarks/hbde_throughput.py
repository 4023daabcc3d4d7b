"""HBDE population-evaluation throughput: candidate-evaluations per second, sequential vs batched.

Setting of the issue: NP = 100 block vectors of ResNet-18 (CIFAR stem, 3x32x32 inputs, 10
classes; N_bins = 10,000 blocking), one super-batch of 128 images, objective 1 - macro-F1 on the
device. Each path evaluates the same ``--candidates`` members of the population (all NP by
default on CUDA; a few on CPU, where one candidate costs 128 ResNet-18 forwards, ~71 GMACs);
the figure is candidates / median seconds over ``--repeats`` timed rounds after a warm-up
round (each round times every path once), in wall seconds and in process CPU seconds (on a
shared machine the two differ).
The image content does not change the cost, so the super-batch is random (CIFAR-10 is not
available on these machines).

Writes benchmarks/results/hbde_throughput_<device>.json (machine, load, threads, rates, and the
choice the evaluator's measured rule makes).

    python benchmarks/hbde_throughput.py --device cpu --candidates 4 --chunks 2,4
    python benchmarks/hbde_throughput.py --device cuda --chunks 5,10,25,50,100
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from archopt.refine import DifferentialEvolution, PopulationEvaluator, histogram_blocking
from archopt.refine.params import ParameterLayout
from archopt.runs import atomic_write_json, environment_info
from archopt.runtime.devices import resolve_device
from archopt.spaces import load_spec

ROOT = Path(__file__).resolve().parents[1]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _once(fn, dev: torch.device) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (all threads) of one call."""
    _sync(dev)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(dev)
    return time.perf_counter() - t0, time.process_time() - c0


def _row(path: str, chunk: int | None, k: int, wall: list[float], cpu: list[float]) -> dict:
    return {"path": path, "chunk": chunk, "seconds": wall, "cpu_seconds": cpu,
            "evals_per_s": k / statistics.median(wall),
            "evals_per_cpu_s": k / statistics.median(cpu)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="resnet18-cifar")
    ap.add_argument("--input", default="3,32,32", help="C,H,W of the images")
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--super-batch", type=int, default=128)
    ap.add_argument("--bins", type=int, default=10_000)
    ap.add_argument("--candidates", type=int, default=None,
                    help="members timed per run [default: NP on CUDA, 4 on CPU]")
    ap.add_argument("--chunks", default="2,4", help="batched-path chunk sizes to time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calibrate", action="store_true",
                    help="also run the evaluator's own measured rule")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    c, h, w = (int(v) for v in args.input.split(","))
    torch.manual_seed(args.seed)
    spec = load_spec(args.spec).with_io(in_channels=c, resolution=h, num_classes=10)
    net = spec.build().eval()
    layout = ParameterLayout.of(net)
    blocking = histogram_blocking(layout.flatten(net), args.bins)
    de = DifferentialEvolution(blocking.low, blocking.high, population=args.population,
                               x0=blocking.values, seed=args.seed)
    pop = de.ask()
    k = args.candidates or (args.population if dev.type == "cuda" else 4)
    cand = pop[:k]
    x = torch.randn(args.super_batch, c, h, w, device=dev)
    y = torch.randint(0, 10, (args.super_batch,), device=dev)
    ev = PopulationEvaluator(net, 10, blocking=blocking, device=dev, path="sequential")
    load_start = os.getloadavg()

    # Paths are timed in rounds (each path once per round, after one warm-up call each), so a
    # change of machine load during the benchmark affects every path alike.
    paths: list[tuple[str, int | None]] = [("sequential", None)] + [
        ("batched", int(v)) for v in args.chunks.split(",") if v and int(v) <= k]
    times: dict[tuple[str, int | None], tuple[list[float], list[float]]] = {}
    errors: dict[tuple[str, int | None], str] = {}

    def run(path: str, chunk: int | None) -> None:
        ev.path, ev.chunk = path, chunk
        ev.objectives(cand, x, y)

    for rnd in range(args.repeats + 1):  # round 0 is the warm-up
        for p in paths:
            if p in errors:
                continue
            try:
                wall, cpu = _once(lambda p=p: run(*p), dev)
            except (RuntimeError, MemoryError) as err:  # out of memory: record and go on
                errors[p] = str(err).splitlines()[0]
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            if rnd > 0:
                times.setdefault(p, ([], []))
                times[p][0].append(wall)
                times[p][1].append(cpu)
        print(f"round {rnd} done", flush=True)
    rows = [_row(p, c, k, *times[(p, c)]) if (p, c) in times else
            {"path": p, "chunk": c, "error": errors.get((p, c), "not timed")} for p, c in paths]
    rule = None
    if args.calibrate:
        ev.path = "auto"
        rule = ev.calibrate(cand, x, max_chunk=max(int(v) for v in args.chunks.split(",")))
    report = {
        "benchmark": "hbde_throughput",
        "machine": {"node": platform.node(), **environment_info(),
                    "loadavg_start": [round(v, 2) for v in load_start],
                    "loadavg_end": [round(v, 2) for v in os.getloadavg()]},
        "setting": {"spec": args.spec, "input": [c, h, w], "params": layout.dimensions,
                    "macs_per_image": spec.macs(h), "blocked_dimensions":
                        blocking.blocked_dimensions, "n_bins": args.bins,
                    "population": args.population, "candidates_timed": k,
                    "super_batch": args.super_batch, "repeats": args.repeats,
                    "metric": "f1", "device": str(dev), "threads": torch.get_num_threads()},
        "results": rows,
        "measured_rule": rule,
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"hbde_throughput_{dev.type}.json"
    atomic_write_json(out, report)
    for r in rows:
        print(f"{r['path']:>10} chunk={r['chunk']}: "
              + (f"{r['evals_per_s']:.3f} candidate-evaluations/s (wall), "
                 f"{r['evals_per_cpu_s']:.3f} per CPU-second" if "evals_per_s" in r
                 else r["error"]))


if __name__ == "__main__":
    main()
