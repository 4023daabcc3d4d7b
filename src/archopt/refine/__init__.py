"""HBDE: gradient-free fine-tuning by histogram blocking + differential evolution, for any metric.

A trained network's D parameters are grouped by value into D' << D histogram blocks that share
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
(RefineConfig), ``loop`` (refine), ``baselines`` (Adam, random blocks), ``plots``.

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
from archopt.refine.config import InvalidRefineConfig, RefineConfig
from archopt.refine.de import DifferentialEvolution
from archopt.refine.evaluation import PopulationEvaluator
from archopt.refine.loop import RefineResult, Source, load_source, make_blocking, refine
from archopt.refine.params import ParameterLayout
from archopt.refine.superbatch import CircularSuperBatches

__all__ = [
    "BASELINES",
    "Blocking",
    "CircularSuperBatches",
    "DifferentialEvolution",
    "InvalidRefineConfig",
    "ParameterLayout",
    "PopulationEvaluator",
    "RefineConfig",
    "RefineResult",
    "Source",
    "adam_baseline",
    "blocking_cost",
    "histogram_blocking",
    "load_source",
    "make_blocking",
    "random_blocking",
    "random_blocks_baseline",
    "refine",
    "run_baselines",
    "sweep_bins",
]
