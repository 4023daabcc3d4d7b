"""Bad-input census: every kind of input a user can get wrong, tried through the installed
``archopt`` command as a user would (a fresh process per case), and counted.

A case is *handled* when the process exits with status 2, prints exactly one ``error:`` line on
stderr, no Python traceback, and leaves nothing behind: the case's scratch folder holds, after
the command, exactly the files it held before (no half-written result folder, no lock file).
Informational lines (``> threads: ...``) may precede the error line.

Writes ``benchmarks/results/bad_input_census.json``: per case (kind, name, argv, exit status,
the error line, what was left behind, seconds) and the count tried / handled by kind.

    python benchmarks/bad_input_census.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.data.writers import write_idx, write_mnist_like  # noqa: E402

from archopt.runs import atomic_write_json, environment_info  # noqa: E402

Setup = Callable[[Path], list[str]]
CASES: list[tuple[str, str, Setup]] = []


def case(kind: str, name: str) -> Callable[[Setup], Setup]:
    def register(fn: Setup) -> Setup:
        CASES.append((kind, name, fn))
        return fn
    return register


def text(path: Path, content: str | bytes) -> str:
    data = content if isinstance(content, bytes) else content.encode("utf-8", "surrogateescape")
    path.write_bytes(data)
    return str(path)


TRAIN = ["--data", "digits", "--epochs", "1"]
NESTED = "[" * 100_000 + "]" * 100_000


# -- spec files ----------------------------------------------------------------------------------
SPEC_FILES = {
    "nested-list": NESTED,
    "nested-in-object": '{"space": ' + NESTED + "}",
    "truncated": '{"space": "mlp", "in_features": 64, "widths": [32',
    "empty": "",
    "not-utf8": "\udcff\udcfe",
    "not-json": "space = mlp",
    "unknown-space": '{"space": "transformer"}',
    "wrong-type": '{"space": "mlp", "in_features": "x", "widths": [8]}',
    "negative-width": '{"space": "mlp", "in_features": 64, "widths": [-8]}',
    "zero-width": '{"space": "mlp", "in_features": 64, "widths": [0]}',
    "unknown-field": '{"space": "mlp", "in_features": 64, "widths": [8], "colour": "red"}',
    "resnet-1e6-layers": json.dumps({"space": "resnet", "in_channels": 1, "resolution": 8,
                                     "stem": {"out": 8},
                                     "blocks": [{"out": 8, "btn": 4, "L": 10**6}]}),
    "mlp-1e9-wide": '{"space": "mlp", "in_features": 64, "widths": [1000000000]}',
}
OVERSIZED = ("resnet-1e6-layers", "mlp-1e9-wide")  # valid for `score` (analytic, no allocation)
for _name, _content in SPEC_FILES.items():
    for _verb in ("summary", "train") if _name in OVERSIZED else ("score", "summary", "train"):
        def _spec(tmp: Path, content=_content, verb=_verb) -> list[str]:
            spec = text(tmp / "spec.json", content)
            extra = [*TRAIN, "--out", str(tmp / "out")] if verb == "train" else []
            return [verb, spec, *extra]
        case("spec file", f"{_verb}:{_name}")(_spec)

for _name in ("no-such-name", "spec-is-a-folder"):
    def _missing(tmp: Path, name=_name) -> list[str]:
        if name == "spec-is-a-folder":
            (tmp / "folder.json").mkdir()
            return ["score", str(tmp / "folder.json")]
        return ["score", "resnet-9000"]
    case("spec file", f"score:{_name}")(_missing)


# -- data files ----------------------------------------------------------------------------------
def _mnist(tmp: Path, damage: str) -> Path:
    folder = tmp / "data" / "mnist"
    write_mnist_like(folder, n_train=40, n_test=10)
    target = folder / "train-images-idx3-ubyte.gz"
    if damage == "deflate":
        images = np.tile(np.arange(28, dtype=np.uint8) * 9, (40, 28, 1))
        raw = bytes([0, 0, 8, 3]) + (40).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
        blob = bytearray(gzip.compress(raw + images.tobytes()))
        for i in range(12, len(blob) - 8):
            blob[i] ^= 0xA5
        target.write_bytes(bytes(blob))
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:60])
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "not-gzip":
        target.write_bytes(b"hello, world")
    elif damage == "wrong-magic":  # an IDX of float32 (type code 0x0D) where uint8 is due
        raw = bytes([0, 0, 0x0D, 3]) + struct.pack(">3I", 40, 28, 28)
        target.write_bytes(gzip.compress(raw + np.zeros((40, 28, 28), ">f4").tobytes()))
    elif damage == "label-count":  # 39 labels for 40 images (write_idx appends the .gz)
        write_idx(folder / "train-labels-idx1-ubyte", np.zeros(39, np.uint8))
    elif damage == "missing":
        target.unlink()
    return tmp / "data"


for _damage in ("deflate", "truncated", "empty", "not-gzip", "wrong-magic", "label-count",
                "missing"):
    for _how in ("train", "train-no-verify", "datasets-verify"):
        def _data(tmp: Path, damage=_damage, how=_how) -> list[str]:
            root = _mnist(tmp, damage)
            if how == "datasets-verify":
                return ["datasets", "verify", "--data-dir", str(root)]
            return ["train", "cnn-small", "--data", "mnist", "--data-dir", str(root),
                    "--epochs", "1", "--out", str(tmp / "out"),
                    *(["--no-verify"] if how == "train-no-verify" else [])]
        if not (_damage == "missing" and _how == "datasets-verify"):
            case("data file", f"{_how}:{_damage}")(_data)

case("data file", "train:unknown-dataset")(
    lambda tmp: ["train", "cnn-small", "--data", "cifar-1000", "--out", str(tmp / "out")])
case("data file", "train:empty-data-dir")(
    lambda tmp: (tmp / "empty").mkdir() or ["train", "cnn-small", "--data", "mnist", "--data-dir",
                                            str(tmp / "empty"), "--out", str(tmp / "out")])


# -- numbers on the command line -----------------------------------------------------------------
for _p in ("2^99999", "-2^99999", "2^-99999", "9" * 400, "1e99999", "nan", "inf", "2^x", ""):
    case("number", f"structure --penalty {_p[:12]!r}")(
        lambda tmp, p=_p: ["structure", "--task", "mlp-units", "--data", "digits",
                           f"--penalty={p}", "--epochs", "1", "--out", str(tmp / "out")])
for _v in ("nan", "1e999", "-5", "abc", "0"):
    case("number", f"design --budget-macs {_v}")(
        lambda tmp, v=_v: ["design", f"--budget-macs={v}", "--out", str(tmp / "out")])
for _opt, _v in (("--epochs", "-1"), ("--batch-size", "0"), ("--lr", "nan"), ("--lr", "-1"),
                 ("--threads", "0"), ("--threads", "abc"), ("--batch-size", "100000000")):
    case("number", f"train {_opt} {_v}")(
        lambda tmp, o=_opt, v=_v: ["train", "cnn-small", "--data", "digits", "--epochs", "1",
                                   f"{o}={v}", "--out", str(tmp / "out")])
for _r in ("0", "-3", "100000"):
    case("number", f"summary --resolution {_r}")(
        lambda tmp, r=_r: ["summary", "cnn-small", f"--resolution={r}"])


# -- checkpoints -----------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _checkpoint(tmp: Path, damage: str) -> str:
    path = tmp / "model.pt"
    if damage == "code-running pickle":
        torch.save({"format": "archopt-checkpoint", "model": _Payload(str(tmp / "RAN"))}, path)
    else:
        good = tmp / "good.bin"
        torch.save({"x": torch.zeros(1000)}, good)
        data = good.read_bytes()
        good.unlink()
        path.write_bytes({"truncated": data[:300], "empty": b"", "text": b"hello",
                          "foreign": data}[damage])
    return str(path)


for _damage in ("code-running pickle", "truncated", "empty", "text", "foreign"):
    for _verb in ("score", "train", "refine"):
        def _ckpt(tmp: Path, damage=_damage, verb=_verb) -> list[str]:
            ckpt = _checkpoint(tmp, damage)
            out = ["--out", str(tmp / "out")]
            return {"score": ["score", ckpt], "train": ["train", ckpt, *TRAIN, *out],
                    "refine": ["refine", ckpt, "--data", "digits", *out]}[verb]
        case("checkpoint", f"{_verb}:{_damage}")(_ckpt)


# -- result folders read back --------------------------------------------------------------------
def _fake_run(tmp: Path, summary: str | None) -> str:
    folder = tmp / "run"
    folder.mkdir()
    if summary is not None:
        (folder / "config.json").write_text(json.dumps({"run": {}}))
        text(folder / "summary.json", summary)
    return str(folder)


for _name, _summary in (("truncated summary", '{"designed": {"test_accuracy": 0.98'),
                        ("empty summary", ""), ("not-utf8 summary", "\udcff\udcfe"),
                        ("nested summary", NESTED), ("empty folder", None)):
    case("result folder", f"report:{_name}")(lambda tmp, s=_summary: ["report", _fake_run(tmp, s)])
case("result folder", "report:absent")(lambda tmp: ["report", str(tmp / "absent")])
case("result folder", "report:a-file")(lambda tmp: ["report", text(tmp / "x", "hello")])
case("result folder", "structure --from: not a run")(
    lambda tmp: ["structure", "--from", _fake_run(tmp, None), "--data", "digits",
                 "--out", str(tmp / "out")])
# (`train --resume` on an empty folder is not a bad input: nothing to resume, it starts fresh.)
case("result folder", "--out is a file")(
    lambda tmp: ["train", "cnn-small", *TRAIN, "--out", text(tmp / "out", "x")])


# -- run configs ---------------------------------------------------------------------------------
for _name, _cfg in (("truncated", "a: ["), ("nested", "a: " + "[" * 5000 + "]" * 5000),
                    ("not-a-mapping", "- just\n- a list\n"), ("bad-value", "budget_macs: lots\n"),
                    ("not-utf8", "\udcff"), ("unknown-key", "budjet_macs: 1e6\n"),
                    ("infeasible budget", "budget_macs: 10\n")):
    case("run config", f"run --config:{_name}")(
        lambda tmp, c=_cfg: ["run", "--config", text(tmp / "run.yaml", c),
                             "--out", str(tmp / "run")])


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): (p.stat().st_size if p.is_file() else -1)
            for p in sorted(folder.rglob("*"))}


def run_case(kind: str, name: str, setup: Setup, timeout: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="census-"))
    try:
        argv = setup(tmp)
        before = snapshot(tmp)
        env = {**os.environ, "ARCHOPT_THREADS": "1", "ARCHOPT_DATA_DIR": str(tmp / "no-data")}
        if kind != "data file":
            env["ARCHOPT_DATA_DIR"] = os.environ.get("ARCHOPT_DATA_DIR", "")
        t0 = time.perf_counter()
        try:
            res = subprocess.run(["archopt", *argv], capture_output=True, text=True,
                                 timeout=timeout, env=env, cwd=tmp, errors="replace")
            rc, stderr = res.returncode, res.stderr
        except subprocess.TimeoutExpired:
            rc, stderr = None, f"(timed out after {timeout:.0f} s)"
        seconds = time.perf_counter() - t0
        after = snapshot(tmp)
        left = sorted(set(after) - set(before)) + sorted(
            k for k in before if k in after and after[k] != before[k])
        errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
        handled = (rc == 2 and len(errors) == 1 and "Traceback" not in stderr and not left
                   and not (tmp / "RAN").exists())
        return {"kind": kind, "name": name, "argv": [a.replace(str(tmp), "TMP") for a in argv],
                "exit": rc, "error": errors[0][:300].replace(str(tmp), "TMP") if errors else None,
                "stderr_tail": stderr.replace(str(tmp), "TMP")[-400:] if not handled else None,
                "left_behind": left[:10], "handled": handled, "seconds": round(seconds, 2)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/bad_input_census.json"))
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    results = []
    for kind, name, setup in CASES:
        if args.only and args.only not in name:
            continue
        r = run_case(kind, name, setup, args.timeout)
        results.append(r)
        mark = "ok " if r["handled"] else "BAD"
        print(f"{mark} {kind:14s} {name:42s} exit={r['exit']} {r['seconds']:.1f}s "
              f"{(r['error'] or r['stderr_tail'] or '')[-110:]!r}", flush=True)
    by_kind: dict[str, dict[str, int]] = {}
    for r in results:
        k = by_kind.setdefault(r["kind"], {"tried": 0, "handled": 0})
        k["tried"] += 1
        k["handled"] += int(r["handled"])
    total = {"tried": len(results), "handled": sum(r["handled"] for r in results)}
    print(json.dumps({"by_kind": by_kind, "total": total}, indent=1))
    if not args.only:
        atomic_write_json(Path(args.out), {
            "benchmark": "bad_input_census", "rule": __doc__.split("\n\n")[1].replace("\n", " "),
            "by_kind": by_kind, "total": total, "cases": results,
            "machine": environment_info()})


if __name__ == "__main__":
    main()
