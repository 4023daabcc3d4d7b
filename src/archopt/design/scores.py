"""Training-free scores of one architecture spec: multi-scale entropy, effectiveness, the
depth-uniformity penalty, the power-law fit of stage entropies, and the design objective.

This is the *reference* path: it reads the spec's cost table (every main-path conv layer with its
fan-in, stage and resolution) and applies the formulas layer by layer, for any spec of the
``resnet``, ``mbv2``, ``densenet`` and ``mlp`` spaces. The solvers use vectorised versions
(:mod:`archopt.design.cnn`, :mod:`archopt.design.dense`, :mod:`archopt.design.mlp`) that the tests
hold equal to this one.

Formulas (DeepMAD, Shen et al., CVPR 2023, section 3; restated in specs/deepmad.md, sections 2-5,
in the form the authors' TinyNAS toolbox computes them):

- per conv layer l with fan-in ``w_l = c_in / groups * k^2``: ``t_l = 0.5 * log(w_l)``
  (natural log; SE layers, residual projections, BN and the classifier contribute nothing);
- stage i with output channels ``c_i`` and output side ``r_i``:
  ``H_i = (log c_i + log r_i^2) * sum_{l from the input to the end of stage i} t_l``
  (the sum is cumulative from the input);
- entropy ``H = sum_i alpha_i H_i``, alpha = [1, 1, 1, 1, 8] (see :func:`stage_weights`);
- effectiveness ``rho = max_i L_i / exp(mean_{l <= L_i} log w_l)`` with ``L_i`` the conv layers
  from the input to the end of stage i (depth over geometric-mean fan-in);
- depth penalty ``beta * exp(std(L_2..L_S))`` over the superblock depths except the first
  (population std). The toolbox drops the first superblock (its depth is capped at 3) only in
  its ResNet-like spaces: ``SuperResKXKX`` drops the first, ``SuperResK1KXK1`` through a slip
  the first two; for the MobileNet-V2-like space (``SuperResK1DWSEK1``) it keeps every
  superblock's depth. We use all but the first for both the ``resnet`` and ``mbv2`` spaces
  (for ``mbv2`` this differs from the toolbox, which keeps the first);
- DeepMAD objective ``H - beta * exp(std)``, beta = 10.

MLP form (DeepMAD section 3 / specs/deepmad.md section 6): ``H = sum_i log w_i`` over the hidden
widths, ``rho = L / geometric-mean(w)``; objective = H.

Dense Optimizer form (Liu et al., arXiv 2410.07499; specs/dense_optimizer.md): the same per-layer
terms over every conv of a DenseNet(-BC), stage entropies as above, the power-law fit
``H_i ~ a * i^b`` in log-log space, ``S = a - b``, objective ``H + beta * S``. The paper's full
equations were not available; this is the derivation in DeepMAD's framework given in the spec.
Assumptions (ours, named):

- a transition (BN-ReLU-1x1 conv + 2x2 average pool) is the *down-sampling unit of the next
  stage*, as the stride-2 first block is in DeepMAD: its 1x1 conv term counts towards stage i+1,
  and stage i ends at its dense block's output (``c_i = w_0 + L_i * g_i`` channels at the
  block's resolution). (The cost table lists the transition under stage i for the MACs/params
  table; only the entropy assignment differs.)
- rho for a DenseNet is DeepMAD's definition over all conv layers on the main path (stem, both
  convs of every dense layer, transitions), maximised over the stage ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archopt.errors import InvalidSpec
from archopt.spaces.base import ArchSpec, conv_out

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_DENSE_BETA",
    "DEFAULT_DEPTH_PENALTY",
    "BatchScores",
    "PowerLawFit",
    "ScoreReport",
    "StageProfile",
    "fit_power_law",
    "power_law_fit",
    "score_spec",
    "stage_profile",
    "stage_weights",
]

#: DeepMAD's stage weights for its 5 stages (TinyNAS ``multi_block_ratio``).
DEFAULT_ALPHA: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 8.0)
#: DeepMAD's depth-uniformity penalty ratio (TinyNAS ``depth_penalty_ratio``).
DEFAULT_DEPTH_PENALTY = 10.0
#: Our default power-law weight for the Dense Optimizer objective (the paper's ablation uses
#: 0, 0.001, 0.1 and 10 and does not name a default; this is our choice).
DEFAULT_DENSE_BETA = 0.1


def stage_weights(n_stages: int, alpha: Sequence[float] | None = None) -> np.ndarray:
    """The stage weights alpha for a network with ``n_stages`` stages.

    DeepMAD fixes 5 stages with alpha = [1, 1, 1, 1, 8]. For any other number of stages (e.g.
    CIFAR / Fashion-MNIST sized inputs that only allow 3 or 4 down-samplings) we keep the rule
    "the last stage weighs 8, every other stage 1": a weight list longer than the network is
    aligned on its *last* stage (``alpha[-n:]``), a shorter one is padded at the front with its
    first value. An explicit ``alpha`` of the right length is used as is.

    Raises: InvalidSpec for ``n_stages < 1`` or an empty / negative ``alpha``.
    """
    if n_stages < 1:
        raise InvalidSpec(f"a network needs at least one stage, got {n_stages}")
    a = list(DEFAULT_ALPHA if alpha is None else alpha)
    if not a or any(not math.isfinite(x) or x < 0 for x in a):
        raise InvalidSpec(f"stage weights alpha must be non-negative numbers, got {a}")
    if len(a) >= n_stages:
        a = a[len(a) - n_stages:]
    else:
        a = [a[0]] * (n_stages - len(a)) + a
    return np.asarray(a, dtype=float)


@dataclass(frozen=True)
class PowerLawFit:
    """Least-squares fit ``log H_i = log a + b log i`` (i = 1..S) of the stage entropies.

    ``score = a - b`` (Dense Optimizer's S); ``r2`` the coefficient of determination in log
    space (1.0 when S < 3, where the line passes through every point).
    """

    a: float
    b: float
    r2: float

    @property
    def score(self) -> float:
        return self.a - self.b


def fit_power_law(h: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise least squares ``log H_i = log a + b log i`` (i = 1..S) for ``h`` of shape (N, S).

    Returns ``(a, b, r2)`` arrays (r2 in log space; 1 where the points are collinear or S < 3);
    with S == 1: ``a = H_1``, ``b = 0``, ``r2 = 1``. Entropies must be positive.
    """
    h = np.asarray(h, dtype=float)
    n, s = h.shape
    if s == 1:
        return h[:, 0].copy(), np.zeros(n), np.ones(n)
    x = np.log(np.arange(1, s + 1, dtype=float))
    xc = x - x.mean()
    y = np.log(h)
    ym = y.mean(axis=1, keepdims=True)
    b = ((y - ym) @ xc) / float(xc @ xc)
    log_a = ym[:, 0] - b * x.mean()
    resid = y - (log_a[:, None] + b[:, None] * x[None, :])
    ss_tot = ((y - ym) ** 2).sum(axis=1)
    ss_res = (resid**2).sum(axis=1)
    safe = np.where(ss_tot > 1e-300, ss_tot, 1.0)
    r2 = np.where(ss_tot > 1e-300, 1.0 - ss_res / safe, 1.0)
    return np.exp(log_a), b, r2


def power_law_fit(stage_entropies: Sequence[float]) -> PowerLawFit:
    """Fit ``H_i ~ a * i^b`` by least squares in log-log space (Dense Optimizer section 3.C).

    With one stage the fit is degenerate: ``a = H_1, b = 0``.

    Raises: InvalidSpec when a stage entropy is not positive (its log is undefined).
    """
    h = np.asarray(stage_entropies, dtype=float)
    if h.ndim != 1 or h.size == 0:
        raise InvalidSpec("power-law fit needs a non-empty list of stage entropies")
    if np.any(~np.isfinite(h)) or np.any(h <= 0):
        raise InvalidSpec(f"power-law fit needs positive stage entropies, got {h.tolist()}")
    a, b, r2 = fit_power_law(h[None, :])
    return PowerLawFit(a=float(a[0]), b=float(b[0]), r2=float(r2[0]))


@dataclass(kw_only=True)
class BatchScores:
    """Scores of a batch of N candidates, as arrays (what the vectorised scorers return).

    Attributes:
        macs, params, layers: costs (one image; exact integers held in float64).
        effectiveness: rho = max over stage ends; stage_effectiveness (N, S) per stage end.
        stage_entropies: (N, S) unweighted H_i; entropy: sum_i alpha_i H_i.
        depth_penalty: DeepMAD's penalty (zeros where the space has none).
        objective: what the solvers maximise.
        feasible: set by the caller that knows the budgets (None until then).
    """

    macs: np.ndarray
    params: np.ndarray
    layers: np.ndarray
    effectiveness: np.ndarray
    stage_entropies: np.ndarray
    stage_effectiveness: np.ndarray
    entropy: np.ndarray
    depth_penalty: np.ndarray
    objective: np.ndarray
    feasible: np.ndarray | None = None

    def metrics(self, i: int) -> dict[str, Any]:
        """JSON-ready figures of candidate ``i``."""
        return {
            "objective": float(self.objective[i]), "entropy": float(self.entropy[i]),
            "effectiveness": float(self.effectiveness[i]),
            "depth_penalty": float(self.depth_penalty[i]),
            "stage_entropies": self.stage_entropies[i].tolist(),
            "stage_effectiveness": self.stage_effectiveness[i].tolist(),
            "macs": round(float(self.macs[i])), "params": round(float(self.params[i])),
            "layers": int(self.layers[i]),
        }


@dataclass(frozen=True)
class StageProfile:
    """What the entropy formulas need from a CNN spec.

    Attributes:
        fan_ins: fan-in of every main-path conv layer, input to output.
        layer_stage: 1-based stage of each of those layers (entropy assignment).
        stage_channels, stage_res: output channels and side length of each stage.
        depths: depth L of each superblock (``resnet`` / ``mbv2``; empty otherwise).
    """

    fan_ins: np.ndarray
    layer_stage: np.ndarray
    stage_channels: list[int]
    stage_res: list[int]
    depths: list[int] = field(default_factory=list)

    @property
    def n_stages(self) -> int:
        return len(self.stage_channels)


def _cnn_profile(spec: Any, res: int) -> StageProfile:
    rows = [r for r in spec.cost_table(res) if r.main]
    stages = sorted({r.stage for r in rows})
    if stages != list(range(1, len(stages) + 1)):
        raise InvalidSpec(f"{spec.space} spec: stages {stages} are not numbered 1..n")
    chans, sides = [], []
    for s in stages:
        last = [r for r in rows if r.stage == s][-1]
        side = last.out_res
        if last.name == "stem.conv" and spec.stem.pool:
            side = conv_out(side, 3, 2, 1)
        chans.append(last.c_out)
        sides.append(side)
    return StageProfile(np.array([r.fan_in for r in rows], dtype=float),
                        np.array([r.stage for r in rows]), chans, sides,
                        [b.L for b in spec.blocks])


def dense_sides(resolution: int, stem_k: int, stem_stride: int, stem_pool: bool,
                stages: int) -> list[int]:
    """Feature-map side of each dense stage: the stem's output (after its optional max-pool),
    halved by every transition's 2x2 average pool.

    Raises: InvalidSpec when the input is too small for that many stages.
    """
    r = conv_out(resolution, stem_k, stem_stride)
    if stem_pool:
        r = conv_out(r, 3, 2, 1)
    out = []
    for i in range(stages):
        if i > 0:
            r = conv_out(r, 2, 2, 0)
        if r < 1:
            raise InvalidSpec(f"input side {resolution} is too small for {stages} dense "
                              "stages (each transition halves it)")
        out.append(r)
    return out


def _dense_profile(spec: Any, res: int) -> StageProfile:
    rows = [r for r in spec.cost_table(res) if r.main]
    stage = []
    for r in rows:
        # a transition belongs to the stage it down-samples into (see module docstring)
        stage.append(r.stage + 1 if r.name.startswith("transitions.") else r.stage)
    lives = spec.live_connections()
    sides = dense_sides(res, spec.stem.k, spec.stem.stride, spec.stem.pool, len(spec.stages))
    return StageProfile(np.array([r.fan_in for r in rows], dtype=float), np.array(stage),
                        [lv.out_channels for lv in lives], sides)


def stage_profile(spec: ArchSpec, resolution: int | None = None) -> StageProfile:
    """Main-path fan-ins, their stages, and each stage's output channels and side.

    Stage numbering follows TinyNAS (a stage ends at each unit followed by a stride-2 unit and at
    the last unit) for ``resnet`` / ``mbv2``; one stage per dense block for ``densenet``.

    Raises: InvalidSpec for an ``mlp`` spec (no stages) or a missing resolution.
    """
    if spec.space == "mlp":
        raise InvalidSpec("an mlp spec has no stages; use score_spec for its entropy")
    res = spec._res(resolution)
    if spec.space == "densenet":
        return _dense_profile(spec, res)
    return _cnn_profile(spec, res)


@dataclass(frozen=True)
class ScoreReport:
    """Training-free scores of one spec (see module docstring for the formulas).

    Attributes:
        space: the spec's space.
        entropy: H = sum_i alpha_i H_i (MLP: sum log w_i); no penalty.
        stage_entropies: H_i per stage (unweighted; MLP: per-layer log w_i).
        effectiveness: rho = max over stage ends (MLP: L / geometric-mean width).
        stage_effectiveness: rho_i per stage end.
        depth_penalty: beta * exp(std of superblock depths but the first) (resnet / mbv2; 0
            otherwise).
        power_law: the fit of stage entropies (densenet; None otherwise).
        objective: DeepMAD ``H - penalty``; Dense Optimizer ``H + beta * S``; MLP ``H``.
        alpha: the stage weights used.
    """

    space: str
    entropy: float
    stage_entropies: list[float]
    effectiveness: float
    stage_effectiveness: list[float]
    depth_penalty: float
    objective: float
    alpha: list[float]
    power_law: PowerLawFit | None = None
    beta: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "entropy": self.entropy, "effectiveness": self.effectiveness,
            "objective": self.objective, "depth_penalty": self.depth_penalty,
            "stage_entropies": self.stage_entropies,
            "stage_effectiveness": self.stage_effectiveness, "alpha": self.alpha,
            "beta": self.beta,
        }
        if self.power_law is not None:
            d["power_law"] = {"a": self.power_law.a, "b": self.power_law.b,
                              "S": self.power_law.score, "r2": self.power_law.r2}
        return d


def depth_penalty(depths: Sequence[int], beta: float = DEFAULT_DEPTH_PENALTY) -> float:
    """``beta * exp(std(depths[1:]))`` (population std; DeepMAD depth-uniformity penalty)."""
    rest = np.asarray(list(depths)[1:], dtype=float)
    std = float(rest.std()) if rest.size else 0.0
    return float(beta * math.exp(std))


def _mlp_scores(spec: Any) -> ScoreReport:
    w = np.asarray(spec.kept_widths(), dtype=float)
    if w.size == 0:
        raise InvalidSpec("an mlp with no hidden layer has no entropy to score")
    logs = np.log(w)
    rho = float(w.size / math.exp(logs.mean()))
    h = float(logs.sum())
    return ScoreReport("mlp", h, logs.tolist(), rho, [rho], 0.0, h, [1.0] * int(w.size))


def score_spec(spec: ArchSpec, resolution: int | None = None, *,
               alpha: Sequence[float] | None = None, beta: float | None = None) -> ScoreReport:
    """Entropy, effectiveness, penalty / power law and objective of one spec.

    Args:
        spec: a ``resnet``, ``mbv2``, ``densenet`` or ``mlp`` spec.
        resolution: input side (default: the spec's own).
        alpha: stage weights (default [1, 1, 1, 1, 8], aligned per :func:`stage_weights`).
        beta: the objective's weight: the depth-penalty ratio for ``resnet`` / ``mbv2``
            (default 10) or the power-law weight for ``densenet`` (default
            :data:`DEFAULT_DENSE_BETA`).

    Raises: InvalidSpec (no resolution, too many stages for the input size, an empty MLP).
    """
    if spec.space == "mlp":
        return _mlp_scores(spec)
    prof = stage_profile(spec, resolution)
    t = 0.5 * np.log(prof.fan_ins)
    logw = np.log(prof.fan_ins)
    a = stage_weights(prof.n_stages, alpha)
    hs, rhos = [], []
    for s in range(1, prof.n_stages + 1):
        upto = int(np.nonzero(prof.layer_stage <= s)[0].max()) + 1
        cum = float(t[:upto].sum())
        hs.append((math.log(prof.stage_channels[s - 1])
                   + 2.0 * math.log(prof.stage_res[s - 1])) * cum)
        rhos.append(upto / math.exp(float(logw[:upto].mean())))
    h = float(np.dot(a, hs))
    if spec.space == "densenet":
        b = DEFAULT_DENSE_BETA if beta is None else float(beta)
        fit = power_law_fit(hs)
        return ScoreReport("densenet", h, hs, max(rhos), rhos, 0.0, h + b * fit.score,
                           a.tolist(), fit, b)
    b = DEFAULT_DEPTH_PENALTY if beta is None else float(beta)
    pen = depth_penalty(prof.depths, b)
    return ScoreReport(spec.space, h, hs, max(rhos), rhos, pen, h - pen, a.tolist(), None, b)
