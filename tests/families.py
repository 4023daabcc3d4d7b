"""One tiny result folder per model family archopt writes (the export and load tests' input):
a trained spec, a design, a compacted structure model (MLP units and DenseNet connections), an
HBDE-refined checkpoint and a SWAT-NN compact MLP; each made by its own verb on the embedded
digits (or the synthetic regression target), seconds each."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from archopt.cli import app
from tests.structure.test_cli import TINY_DENSENET, TINY_MLP  # the structure tests' supernets

FAMILIES = ("trained", "design", "structure-mlp", "structure-densenet", "refined", "latent")

_runner = CliRunner()


def _cli(*args: object) -> None:
    r = _runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output


def make_family(name: str, root: Path, *, epochs: int = 1, steps: int = 6) -> Path:
    """Write the result folder of family ``name`` under ``root``; returns it. ``refined``
    needs ``trained`` and ``latent`` an autoencoder: both are made in ``root`` when absent.
    ``epochs``: training epochs (train, structure); ``steps``: structure steps per epoch,
    latent search steps (x 1/2) and HBDE generations (x 1/3). The defaults are the tests'
    (seconds in all); ``benchmarks/export_roundtrip.py`` trains longer."""
    out = root / name
    if out.exists():
        return out
    if name == "trained":
        _cli("train", "cnn-small", "--data", "digits", "--epochs", epochs, "--device", "cpu",
             "--no-latency", "--out", out)
    elif name == "design":
        _cli("design", "--space", "resnet", "--budget-macs", "1.5e6", "--budget-params", "3e5",
             "--rho", "0.3", "--resolution", "8", "--in-channels", "1", "--num-classes", "10",
             "--candidates", "300", "--no-plots", "--out", out)
    elif name.startswith("structure"):
        mlp = name == "structure-mlp"
        spec = root / f"{name}.json"
        spec.write_text(json.dumps(TINY_MLP if mlp else TINY_DENSENET))
        _cli("structure", "--task", "mlp-units" if mlp else "densenet-connections",
             "--data", "digits", "--space", spec, "--penalty",
             "2^-4" if mlp else "0",  # a penalised DenseNet this short may disconnect
             "--optimizer", "sng",
             "--epochs", epochs, "--max-steps-per-epoch", steps, "--test-subset", "100",
             "--device", "cpu", "--no-latency", "--out", out)
    elif name == "refined":
        trained = make_family("trained", root, epochs=epochs, steps=steps)
        _cli("refine", trained, "--data", "digits", "--population", "6", "--generations",
             max(2, steps // 3),
             "--super-batch", "64", "--out", out)
    elif name == "latent":
        ae = root / "autoencoder"
        if not ae.exists():
            _cli("latent", "train", "--preset", "tiny", "--activation", "sigmoid", "--steps",
                 "2", "--batch-size", "8", "--val-every", "2", "--val-batches", "1",
                 "--device", "cpu", "--out", ae)
        _cli("latent", "search", "--autoencoder", ae, "--steps", max(3, steps // 2),
             "--samples", "500",
             "--device", "cpu", "--out", out)
    else:
        raise KeyError(name)
    return out
