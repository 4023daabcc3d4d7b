"""archopt: design and optimise neural networks cheaply and on principle.

Five published methods behind one vocabulary (see DESIGN.md):

- ``archopt.design``    DeepMAD entropy design and the Dense Optimizer (branch-and-bound);
- ``archopt.structure`` probabilistic structure optimisation (SNG / ASNG) with a complexity penalty;
- ``archopt.latent``    SWAT-NN: an autoencoder over MLPs and search in its latent space;
- ``archopt.refine``    HBDE: histogram blocking + differential evolution for any metric;
- ``archopt.spaces``    architecture specs (resnet, mbv2, densenet, mlp) with exact cost models.

``archopt.load_model(path)`` returns the network of any result folder or checkpoint archopt
writes; ``archopt.export_onnx(path, out)`` writes it as ONNX (see :mod:`archopt.deploy`).
"""

from typing import Any

from archopt._version import __version__
from archopt.errors import ArchoptError

__all__ = ["ArchoptError", "__version__", "export_onnx", "load_model"]


def __getattr__(name: str) -> Any:  # lazy: `import archopt` does not import torch
    if name in ("load_model", "export_onnx"):
        from archopt import deploy

        return getattr(deploy, name)
    raise AttributeError(f"module 'archopt' has no attribute {name!r}")
