"""Training-free architecture design: entropy scores, budgets and solvers.

- DeepMAD (Shen et al., CVPR 2023): multi-scale entropy, effectiveness rho, depth-uniformity
  penalty; evolutionary search over the ``resnet``, ``mbv2`` and ``mlp`` spaces.
- Dense Optimizer (Liu et al., arXiv 2410.07499): dense-block entropy (log-Gamma closed form),
  power-law distribution of stage entropies; exact branch-and-bound, exhaustive and
  evolutionary search over a DenseNet-BC grid.

Example::

    from archopt.design import Budgets, design
    r = design("resnet", Budgets(macs=1.82e9, params=11.69e6, rho=0.3), resolution=224)
    r.spec, r.metrics["objective"]
"""

from .bnb import BnBResult, BnBStats, DenseBnB
from .budgets import BUDGET_NAMES, Budgets, parse_amount
from .cnn import CNNEval, CNNLayout, MutationRules
from .dense import (
    DenseEval,
    DenseGrid,
    DenseLayout,
    block_log_sum,
    dense_stage,
)
from .evolution import Evolution, EvolutionResult, run_evolution
from .exhaustive import ExhaustiveResult, enumerate_grid, exhaustive_dense
from .mlp import MLPEval, MLPLayout
from .scores import (
    DEFAULT_ALPHA,
    DEFAULT_DENSE_BETA,
    DEFAULT_DEPTH_PENALTY,
    BatchScores,
    PowerLawFit,
    ScoreReport,
    fit_power_law,
    power_law_fit,
    score_spec,
    stage_profile,
    stage_weights,
)
from .search import (
    SOLVERS,
    DesignOptions,
    DesignProblem,
    DesignResult,
    design,
    make_problem,
    register_solver,
)
from .seeds import default_seed, fit_seed

__all__ = [
    "BUDGET_NAMES",
    "DEFAULT_ALPHA",
    "DEFAULT_DENSE_BETA",
    "DEFAULT_DEPTH_PENALTY",
    "SOLVERS",
    "BatchScores",
    "BnBResult",
    "BnBStats",
    "Budgets",
    "CNNEval",
    "CNNLayout",
    "DenseBnB",
    "DenseEval",
    "DenseGrid",
    "DenseLayout",
    "DesignOptions",
    "DesignProblem",
    "DesignResult",
    "Evolution",
    "EvolutionResult",
    "ExhaustiveResult",
    "MLPEval",
    "MLPLayout",
    "MutationRules",
    "PowerLawFit",
    "ScoreReport",
    "block_log_sum",
    "default_seed",
    "dense_stage",
    "design",
    "enumerate_grid",
    "exhaustive_dense",
    "fit_power_law",
    "fit_seed",
    "make_problem",
    "parse_amount",
    "power_law_fit",
    "register_solver",
    "run_evolution",
    "score_spec",
    "stage_profile",
    "stage_weights",
]
