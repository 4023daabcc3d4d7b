"""Shared fixtures: the real-data folder, a CLI runner, quiet plotting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def _shared_data() -> Path | None:
    env = os.environ.get("ARCHOPT_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for c in candidates:
        if (c / "fashion-mnist").is_dir() and (c / "mnist").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with the verified MNIST / Fashion-MNIST copies (CI sets ARCHOPT_DATA_DIR)."""
    d = _shared_data()
    if d is None:
        pytest.skip("real data not found: set ARCHOPT_DATA_DIR to ../shared/data")
    return d


@pytest.fixture()
def cli():
    """Invoke the archopt CLI in-process: ``cli("score", "resnet18", "--json")``."""
    from typer.testing import CliRunner

    from archopt.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke
