"""Sparse-MLP baselines for the SWAT-NN search, all in the search's MLP family (no biases, one
output, hidden widths up to 7, depths 1-4) and protocol (:func:`fit_best`: every depth, the same
restarts and optimiser steps, selection by validation MSE):

- :func:`prune_finetune`: dense Adam, global magnitude pruning, fine-tuning (the spec's baseline);
- :func:`imp_rewind`: iterative magnitude pruning with rewinding (Frankle et al. 2019, 2020);
- :func:`l0_hard_concrete`: L0 regularisation with hard-concrete gates (Louizos et al. 2018),
  steered to the count;
- :func:`dense_narrow`: a dense MLP narrow enough to have at most the count;
- :func:`pruned_baseline`: the single-run prune + fine-tune of ``archopt latent search
  --baseline``.
"""

from archopt.latent.baselines.common import (
    BaselineFit,
    Fit,
    adam_full_batch,
    fit_best,
    forward,
    init_weights,
    topk_mask,
)
from archopt.latent.baselines.dense import dense_narrow, narrow_width
from archopt.latent.baselines.l0 import expected_l0, l0_hard_concrete
from archopt.latent.baselines.pruning import imp_rewind, prune_finetune, pruned_baseline

#: The baselines by the names the comparison reports.
BASELINES = {"l0": l0_hard_concrete, "imp_rewind": imp_rewind,
             "prune_finetune": prune_finetune, "dense_narrow": dense_narrow}

__all__ = ["BASELINES", "BaselineFit", "Fit", "adam_full_batch", "dense_narrow", "expected_l0",
           "fit_best", "forward", "imp_rewind", "init_weights", "l0_hard_concrete",
           "narrow_width", "prune_finetune", "pruned_baseline", "topk_mask"]
