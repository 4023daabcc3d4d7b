"""SWAT-NN: simultaneous weight and architecture optimisation in an autoencoder's latent space.

Source: Huang, Montazerin, Srivastava, "Simultaneous Weight and Architecture Optimization for
Neural Networks", arXiv 2410.08339 (spec: shared/specs/swat.md).

- :mod:`~archopt.latent.encoding`: MLP <-> padded ``7 x W`` array (exact round trip);
- :mod:`~archopt.latent.generator`: seeded, batched random sparse MLPs with an input-output path;
- :mod:`~archopt.latent.autoencoder`: the multi-scale autoencoder and the min-over-decoders loss;
- :mod:`~archopt.latent.training`: training with checkpoint/resume and MdPE validation;
- :mod:`~archopt.latent.search`: latent search (z, threshold t, soft pruning, sparsity penalty);
- :mod:`~archopt.latent.compact`: thresholding and dead-unit removal to a compact MLP;
- :mod:`~archopt.latent.baselines`: sparse-MLP baselines (prune + fine-tune, IMP with rewinding,
  L0 hard-concrete, dense narrow) and the comparison protocol;
- :mod:`~archopt.latent.geometry`: does latent distance follow functional distance?
- :mod:`~archopt.latent.targets`: the paper's synthetic target and ``--data`` resolution.

>>> from archopt.latent import AutoencoderConfig, TrainConfig, train_autoencoder
>>> train_autoencoder("ae", AutoencoderConfig.small("sigmoid"), TrainConfig(steps=2000))
"""

from archopt.latent.autoencoder import (
    PRESETS,
    AutoencoderConfig,
    MultiScaleAutoencoder,
    decoder_errors,
    input_grid,
    min_decoder_loss,
)
from archopt.latent.baselines import pruned_baseline
from archopt.latent.compact import CompactMLP, compact_mlp, magnitude_prune
from archopt.latent.encoding import (
    ACTIVATIONS,
    ArrayLayout,
    array_forward,
    decode,
    encode,
    encode_mlp,
    mlp_from_array,
    structure_mask,
)
from archopt.latent.generator import PAPER_SPARSITIES, random_mlps, training_batch
from archopt.latent.search import (
    DepthResult,
    SearchConfig,
    SearchResult,
    latent_search,
    search_depth,
    soft_prune,
)
from archopt.latent.targets import SYNTHETIC, load_search_data, synthetic_target
from archopt.latent.training import (
    TrainConfig,
    evaluate,
    load_autoencoder,
    percentage_errors,
    train_autoencoder,
)

__all__ = [
    "ACTIVATIONS",
    "PAPER_SPARSITIES",
    "PRESETS",
    "SYNTHETIC",
    "ArrayLayout",
    "AutoencoderConfig",
    "CompactMLP",
    "DepthResult",
    "MultiScaleAutoencoder",
    "SearchConfig",
    "SearchResult",
    "TrainConfig",
    "array_forward",
    "compact_mlp",
    "decode",
    "decoder_errors",
    "encode",
    "encode_mlp",
    "evaluate",
    "input_grid",
    "latent_search",
    "load_autoencoder",
    "load_search_data",
    "magnitude_prune",
    "min_decoder_loss",
    "mlp_from_array",
    "percentage_errors",
    "pruned_baseline",
    "random_mlps",
    "search_depth",
    "soft_prune",
    "structure_mask",
    "synthetic_target",
    "train_autoencoder",
    "training_batch",
]
