"""Datasets for the latent search: the paper's synthetic target, or a user's CSV / NPZ file.

The synthetic target (SWAT-NN spec section 3; arXiv 2410.08339, section 4.2): a random sparse MLP
of hidden width 5 (drawn with :func:`archopt.latent.generator.random_mlps`: guaranteed
input-output path, weights ``U(-10, 10)``, no biases, the autoencoder's activation), evaluated on
``x ~ U(-1, 1)^n_in``; 100,000 samples split 50k / 30k / 20k. Assumptions (the paper summary
fixes only "width 5"): ``depth = 2`` hidden layers and sparsity 0.5 by default; no noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from archopt.data.tabular import TabularData, load_tabular
from archopt.errors import UnknownName
from archopt.latent.encoding import ArrayLayout, array_forward, mlp_from_array
from archopt.latent.generator import random_mlps
from archopt.runtime.devices import torch_generator

__all__ = ["SYNTHETIC", "load_search_data", "synthetic_target"]

SYNTHETIC = "synthetic"


def synthetic_target(activation: str = "sigmoid", negative_slope: float = 0.1, *, n_in: int = 3,
                     depth: int = 2, width: int = 5, sparsity: float = 0.5,
                     samples: int = 100_000, weight_range: float = 10.0,
                     seed: int = 0) -> tuple[TabularData, dict[str, Any]]:
    """The paper's synthetic regression task: a seeded random sparse MLP of width ``width``.

    Returns: ``(data, target)``: ``data`` has ``samples`` rows (x in [-1, 1]^n_in, y = f(x));
    ``target`` describes the generating MLP (``spec``, ``nonzero_weights``, ``neurons``,
    ``depth``, ``sparsity``, ``seed``).
    """
    layout = ArrayLayout(n_in=n_in, max_width=max(7, width, n_in), max_depth=max(4, depth))
    g = torch_generator(seed)
    arr = random_mlps(1, depth, layout, generator=g, sparsity=sparsity, widths=(width, width),
                      weight_range=weight_range)
    x = torch.rand(samples, n_in, generator=g) * 2 - 1
    with torch.no_grad():
        y = array_forward(arr, x, layout, activation, negative_slope)[0]
    spec, state = mlp_from_array(arr[0], layout, activation, negative_slope)
    nonzero = int(sum(int((w != 0).sum()) for w in state.values()))
    data = TabularData(x.numpy().astype(np.float32), y.numpy().astype(np.float32),
                       tuple(f"x{j}" for j in range(n_in)), "y",
                       f"{SYNTHETIC}(activation={activation}, depth={depth}, width={width}, "
                       f"sparsity={sparsity}, seed={seed})")
    info = {"spec": spec.to_dict(), "depth": depth, "width": width, "sparsity": sparsity,
            "seed": seed, "nonzero_weights": nonzero, "neurons": sum(spec.widths),
            "y_std": float(y.std())}
    return data, info


def load_search_data(data: str | Path | None, *, activation: str = "sigmoid",
                     negative_slope: float = 0.1, n_in: int = 3, seed: int = 0,
                     target: str | int | None = None,
                     synthetic: dict[str, Any] | None = None
                     ) -> tuple[TabularData, dict[str, Any] | None]:
    """``--data``: None or ``"synthetic"`` -> :func:`synthetic_target`; else a CSV / NPZ path.

    Returns: ``(data, target info or None)``.

    Raises: DataError (a bad file), UnknownName (neither a file nor a known name).
    """
    if data is None or str(data) == SYNTHETIC:
        return synthetic_target(activation, negative_slope, n_in=n_in, seed=seed,
                                **(synthetic or {}))
    p = Path(data)
    if p.suffix.lower() in (".csv", ".npz") or p.exists():
        return load_tabular(p, target=target), None
    raise UnknownName(f"--data {data!r} is neither a file nor a known dataset name (known: "
                      f"{SYNTHETIC!r}; files: .csv with rows 'features..., target' or .npz with "
                      "arrays x and y)")
