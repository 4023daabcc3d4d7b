"""Shared fixtures: the real-data folder, the embedded digits, one torch thread, a CLI runner,
quiet plotting."""

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


@pytest.fixture(scope="session")
def digits():
    """The embedded digits (scikit-learn's 8x8, fixed stratified split)."""
    from archopt.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module (restored after): on a shared, busy CPU, OpenMP
    threads spinning against other processes slow tiny tensor ops down by orders of
    magnitude."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def cli():
    """Invoke the archopt CLI in-process: ``cli("score", "resnet18", "--json")``."""
    from typer.testing import CliRunner

    from archopt.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture(scope="session")
def families(tmp_path_factory):
    """One tiny result folder per model family (``tests/families.py``), made once: a dict
    family name -> folder."""
    import torch

    from tests.families import FAMILIES, make_family

    root = tmp_path_factory.mktemp("families")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: make_family(name, root) for name in FAMILIES}
    finally:
        torch.set_num_threads(before)
