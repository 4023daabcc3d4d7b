"""Refining a trained classifier for a metric: HBDE (the paper), logit adjustment, bias tuning.

``refine(model, data, RefineConfig(method=...))`` runs one of :data:`METHODS`: ``"hbde"``
(default), ``"logit-adjust"`` (Menon et al., ICLR 2021) or ``"bias"`` (per-class output biases
tuned on the validation split with scipy's differential evolution or CMA-ES).

HBDE: a trained network's D parameters are grouped by value into D' << D histogram blocks that share
one value each; Differential Evolution (DE/rand/1/bin, deferred selection) then searches the
block vector against ``1 - metric`` (macro-F1 by default, or any metric in
``archopt.training.metrics``) on circular super-batches of the training set.

>>> from archopt.data import load_dataset
>>> from archopt.refine import RefineConfig, refine
>>> ds = load_dataset("fashion-mnist")                                     # doctest: +SKIP
>>> res = refine("runs/fmnist/checkpoint.pt", ds, RefineConfig(generations=50),
...              out="runs/fmnist-hbde")                                   # doctest: +SKIP
>>> res.summary["metric_after"]                                            # doctest: +SKIP

Modules: ``params`` (theta <-> module), ``blocking`` (histogram / random blocks, cost report,
N_bins sweep), ``de`` (ask/tell DE), ``superbatch`` (circular super-batches), ``evaluation``
(population objectives: sequential and batched paths, measured choice), ``config``
(RefineConfig), ``loop`` (HBDE), ``posthoc`` (logit adjustment, bias tuning), ``methods``
(``refine``: the dispatch), ``validation`` (the validation split rule), ``output_layer``
(folding offsets into the output bias), ``scores``, ``model_io``, ``baselines`` (Adam, random
blocks), ``plots``.

Source: Khosrowshahli, Rahnamayan, Ombuki-Berman, "Massive Dimensions Reduction and Hybridization
with Meta-heuristics in Deep Learning", arXiv 2408.07194.
"""

from archopt.refine.baselines import (
    BASELINES,
    adam_baseline,
    random_blocks_baseline,
    run_baselines,
)
from archopt.refine.blocking import (
    Blocking,
    blocking_cost,
    histogram_blocking,
    random_blocking,
    sweep_bins,
)
from archopt.refine.config import METHODS, InvalidRefineConfig, RefineConfig
from archopt.refine.de import DifferentialEvolution
from archopt.refine.evaluation import PopulationEvaluator
from archopt.refine.loop import hbde, make_blocking
from archopt.refine.methods import RUN_METHOD, refine
from archopt.refine.model_io import RefineResult, Source, load_source
from archopt.refine.params import ParameterLayout
from archopt.refine.posthoc import class_prior, logit_adjustment, posthoc, tune_biases
from archopt.refine.superbatch import CircularSuperBatches
from archopt.refine.validation import ValidationSplit, resolve_validation

__all__ = [
    "BASELINES",
    "METHODS",
    "RUN_METHOD",
    "Blocking",
    "CircularSuperBatches",
    "DifferentialEvolution",
    "InvalidRefineConfig",
    "ParameterLayout",
    "PopulationEvaluator",
    "RefineConfig",
    "RefineResult",
    "Source",
    "ValidationSplit",
    "adam_baseline",
    "blocking_cost",
    "class_prior",
    "hbde",
    "histogram_blocking",
    "load_source",
    "logit_adjustment",
    "make_blocking",
    "posthoc",
    "random_blocking",
    "random_blocks_baseline",
    "refine",
    "resolve_validation",
    "run_baselines",
    "sweep_bins",
    "tune_biases",
]
