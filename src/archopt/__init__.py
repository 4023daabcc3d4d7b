"""archopt: design and optimise neural networks cheaply and on principle.

Five published methods behind one vocabulary (see DESIGN.md):

- ``archopt.design``    DeepMAD entropy design and the Dense Optimizer (branch-and-bound);
- ``archopt.structure`` probabilistic structure optimisation (SNG / ASNG) with a complexity penalty;
- ``archopt.latent``    SWAT-NN: an autoencoder over MLPs and search in its latent space;
- ``archopt.refine``    HBDE: histogram blocking + differential evolution for any metric;
- ``archopt.spaces``    architecture specs (resnet, mbv2, densenet, mlp) with exact cost models.
"""

from archopt.errors import ArchoptError

__version__ = "0.1.0"
__all__ = ["ArchoptError", "__version__"]
