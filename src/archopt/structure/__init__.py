"""Structure learned with the weights: probabilistic dynamic structure optimisation with a
model-complexity penalty.

Structure bits ``M`` (which hidden units / which DenseNet connections exist) are sampled from a
Bernoulli distribution ``p(M | theta)``; the weights are trained by SGD on the expected loss and
``theta`` by a stochastic natural-gradient step on the ranking of the sampled structures'
losses plus the analytic natural gradient of an expected complexity penalty ``eps * sum c_i
theta_i`` -- one training run, no separate search, no retraining.

>>> from archopt.structure import SNG, Bernoulli
>>> opt = SNG(Bernoulli(4), penalty=2**-7)
>>> masks = opt.ask()                     # (2, 4) bool
>>> opt.tell(masks, [0.3, 0.5])

Modules: ``distributions`` (Bernoulli, Categorical), ``utility`` (ranking utility), ``asktell``
(the optimisers' shared machinery), ``sng`` / ``asng`` (ask / tell optimisers), ``optimizers``
(by name), ``masking`` (supernet base, user hooks), ``mlp`` (unit
selection), ``densenet`` (connection selection), ``resnet`` (inner-channel selection in a
trained ResNet, e.g. the pipeline's designed network), ``compaction`` (the smaller network, weight
usage), ``loop`` (joint training), ``run`` (a run end to end), ``sweep`` (eps0 grid, baselines,
trade-off curve).

Sources: Saito, Shirakawa et al., ICANN 2019 (arXiv 1907.06341); Shirakawa et al., AAAI 2018
(arXiv 1801.07650); Akimoto et al., ICML 2019 (arXiv 1905.08537).
"""

from archopt.structure.asktell import StructureOptimizer
from archopt.structure.asng import ASNG
from archopt.structure.compaction import Compacted, compact, max_output_difference, weight_usage
from archopt.structure.densenet import MaskedDenseNet
from archopt.structure.distributions import Bernoulli, Categorical
from archopt.structure.loop import LoopResult, StructureConfig, train_loop
from archopt.structure.masking import HookedSupernet, MaskSite, Supernet
from archopt.structure.mlp import MaskedMLP
from archopt.structure.optimizers import make_optimizer
from archopt.structure.resnet import MaskedResNet, run_resnet_structure
from archopt.structure.run import TASKS, build_supernet, run_fixed, run_structure
from archopt.structure.sng import SNG
from archopt.structure.utility import ranking_utility

__all__ = [
    "ASNG",
    "SNG",
    "TASKS",
    "Bernoulli",
    "Categorical",
    "Compacted",
    "HookedSupernet",
    "LoopResult",
    "MaskSite",
    "MaskedDenseNet",
    "MaskedMLP",
    "MaskedResNet",
    "StructureConfig",
    "StructureOptimizer",
    "Supernet",
    "build_supernet",
    "compact",
    "make_optimizer",
    "max_output_difference",
    "ranking_utility",
    "run_fixed",
    "run_resnet_structure",
    "run_structure",
    "train_loop",
    "weight_usage",
]
