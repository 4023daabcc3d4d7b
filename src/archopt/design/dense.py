"""Dense Optimizer: entropy of dense blocks (closed form), the power-law stage distribution, and
a vectorised scorer over the discrete DenseNet-BC design space.

Source: Liu et al., "Dense Optimizer: An Information Entropy-Guided Structural Search Method for
Dense-like Neural Network Design", arXiv 2410.07499, section III (summary in
seeds/000_0872cfcf4cc78a76.txt). No reference code is public and the full equations were not
available: what follows is the derivation in DeepMAD's framework given in
specs/dense_optimizer.md section 2, which matches every element the paper names.

Dense layer l (1-based) of a stage with input width ``w_0`` and growth rate ``g`` reads
``w_0 + (l-1) g`` channels; with the DenseNet-BC bottleneck (width ``4 g``) its two convs have
fan-ins ``w_0 + (l-1) g`` and ``4 g k^2``, so with DeepMAD's per-layer term ``0.5 log(fan-in)``

    t_l = 0.5 log(w_0 + (l-1) g) + 0.5 log(4 g k^2)

and the block sum has the closed form (the "factorial" term of the paper's normalised Gaussian
entropy bound)

    sum_{l=1..L} log(w_0 + (l-1) g) = L log g + lnGamma(w_0/g + L) - lnGamma(w_0/g).

Stage i: ``H_i = (log c_i + log r_i^2) * (sum of t over every conv from the input to the end of
stage i)`` with ``c_i = w_0 + L_i g_i`` (the block output) and ``r_i`` its side. The network
entropy is ``H = sum_i alpha_i H_i`` (alpha: 1 for every stage but the last, which gets 8), the
power law ``H_i ~ a i^b`` is fitted in log-log space, ``S = a - b``, and the objective is
``H + beta * S``.

Assumptions (ours, as in :mod:`archopt.design.scores`): a transition (1x1 conv to
``floor(theta c)`` channels + 2x2 average pool) is the down-sampling unit of the *next* stage, so
its term ``0.5 log(c_i)`` counts towards stage i+1; the stem (3x3, ``c_0`` channels, stride 1, no
pool at CIFAR size) is the first layer of stage 1; effectiveness is DeepMAD's rho over all these
convs, maximised over the stage ends. Costs are those of :class:`archopt.spaces.DenseNetSpec`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import gammaln

from archopt.errors import InvalidSpec
from archopt.spaces import DenseNetSpec
from archopt.spaces.base import ArchSpec, conv_out

from .scores import (
    DEFAULT_DENSE_BETA,
    BatchScores,
    dense_sides,
    fit_power_law,
    stage_weights,
)

__all__ = [
    "DenseEval",
    "DenseGrid",
    "DenseLayout",
    "StageCost",
    "block_log_sum",
    "dense_stage",
    "transition",
]


def block_log_sum(w0: Any, g: Any, L: Any) -> np.ndarray:
    """``sum_{l=1..L} log(w0 + (l-1) g)`` by the log-Gamma closed form (arrays broadcast).

    Equals ``L log g + lnGamma(w0/g + L) - lnGamma(w0/g)`` since
    ``prod_{l=0}^{L-1} (w0 + l g) = g^L Gamma(w0/g + L) / Gamma(w0/g)``.
    """
    w0 = np.asarray(w0, dtype=float)
    g = np.asarray(g, dtype=float)
    L = np.asarray(L, dtype=float)
    x = w0 / g
    return L * np.log(g) + gammaln(x + L) - gammaln(x)


@dataclass
class StageCost:
    """Entropy sum, layers, params, MACs and output width of one dense block (arrays)."""

    t_sum: np.ndarray
    layers: np.ndarray
    params: np.ndarray
    macs: np.ndarray
    c_out: np.ndarray


def dense_stage(w0: Any, g: Any, L: Any, k: Any, side: int, *, bottleneck: bool = True,
                bottleneck_width: int = 4) -> StageCost:
    """One dense block of ``L`` layers, growth ``g``, kernel ``k`` on ``w0`` input channels at
    side ``side`` (arrays broadcast).

    Params: per layer the 1x1 conv (``c_in * 4g``), the kxk conv (``4g * g * k^2``) and the two
    pre-activation BNs (``2 c_in + 2 * 4g``); without bottleneck the kxk conv reads ``c_in``
    directly. MACs: the same weights times ``side^2``. Summing ``c_in = w0 + (l-1) g`` over the
    layers gives ``L w0 + g L (L-1) / 2``.
    """
    w0 = np.asarray(w0, dtype=float)
    g = np.asarray(g, dtype=float)
    L = np.asarray(L, dtype=float)
    k2 = np.asarray(k, dtype=float) ** 2
    s_in = L * w0 + g * L * (L - 1.0) / 2.0
    logs = block_log_sum(w0, g, L)
    a2 = float(side) ** 2
    if bottleneck:
        bw = bottleneck_width * g
        t = 0.5 * logs + 0.5 * L * np.log(bw * k2)
        params = (bw + 2.0) * s_in + L * (bw * g * k2 + 2.0 * bw)
        macs = a2 * (bw * s_in + L * bw * g * k2)
        layers = 2.0 * L
    else:
        t = 0.5 * logs + 0.5 * L * np.log(k2)
        params = (g * k2 + 2.0) * s_in
        macs = a2 * g * k2 * s_in
        layers = L
    return StageCost(t, layers, params, macs, w0 + L * g)


def transition(c: Any, side: int, compression: float) -> tuple[np.ndarray, ...]:
    """BN-ReLU-1x1 conv ``c -> floor(theta c)`` (+ 2x2 avg pool) after a dense block.

    Returns ``(c_out, t, params, macs)``: the output width, its entropy term ``0.5 log c``,
    ``c * c_out + 2c`` params and ``c * c_out * side^2`` MACs (at the pre-pool side).
    """
    c = np.asarray(c, dtype=float)
    ct = np.maximum(1.0, np.floor(compression * c + 1e-9))
    return ct, 0.5 * np.log(c), c * ct + 2.0 * c, c * ct * float(side) ** 2


def power_law_coefficients(s: int) -> tuple[np.ndarray, np.ndarray]:
    """``(c, d)`` with ``log a = c . y`` and ``b = d . y`` for ``y_i = log H_i`` (S >= 2)."""
    x = np.log(np.arange(1, s + 1, dtype=float))
    xc = x - x.mean()
    d = xc / float(xc @ xc)
    c = 1.0 / s - x.mean() * d
    return c, d


@dataclass(frozen=True)
class DenseGrid:
    """The discrete Dense Optimizer space: per stage a growth rate, a depth and a kernel.

    Attributes:
        growth, layers, kernels: the choices per stage (the spec's default: g in 8..48 step 4,
            L in 4..40, k in {3, 5}).
        stem: stem widths to choose from; None ties the stem to ``2 * g_1`` (DenseNet-BC).
        stages: number of dense stages S.
    """

    growth: tuple[int, ...] = tuple(range(8, 49, 4))
    layers: tuple[int, ...] = tuple(range(4, 41))
    kernels: tuple[int, ...] = (3, 5)
    stem: tuple[int, ...] | None = None
    stages: int = 3

    def __post_init__(self) -> None:
        for name in ("growth", "layers", "kernels"):
            vals = getattr(self, name)
            if not vals or any(int(v) < 1 for v in vals) or len(set(vals)) != len(vals):
                raise InvalidSpec(f"dense grid: {name} must be distinct positive integers, "
                                  f"got {list(vals)}")
            object.__setattr__(self, name, tuple(sorted(int(v) for v in vals)))
        if any(k % 2 == 0 for k in self.kernels):
            raise InvalidSpec(f"dense grid: kernels must be odd, got {list(self.kernels)}")
        if self.stem is not None:
            if not self.stem or any(int(v) < 1 for v in self.stem):
                raise InvalidSpec(f"dense grid: stem widths must be positive, got {self.stem}")
            object.__setattr__(self, "stem", tuple(sorted({int(v) for v in self.stem})))
        if self.stages < 1:
            raise InvalidSpec(f"dense grid: stages must be >= 1, got {self.stages}")

    def stage_choices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (g, L, k) of one stage as three arrays, in lexicographic (g, L, k) order."""
        prod = np.array(list(itertools.product(self.growth, self.layers, self.kernels)),
                        dtype=np.int64)
        return prod[:, 0], prod[:, 1], prod[:, 2]

    def stem_choices(self) -> tuple[int, ...] | None:
        return self.stem

    @property
    def per_stage(self) -> int:
        return len(self.growth) * len(self.layers) * len(self.kernels)

    def size(self) -> int:
        """Number of complete designs in the grid."""
        return (len(self.stem) if self.stem else 1) * self.per_stage ** self.stages

    def as_dict(self) -> dict[str, Any]:
        return {"growth": list(self.growth), "layers": list(self.layers),
                "kernels": list(self.kernels),
                "stem": None if self.stem is None else list(self.stem), "stages": self.stages}


@dataclass(kw_only=True)
class DenseEval(BatchScores):
    """Scores of N dense designs (see :class:`BatchScores`) with the power-law fit ``a``,
    ``b``, ``r2``; ``objective = entropy + beta * (a - b)``."""

    a: np.ndarray
    b: np.ndarray
    r2: np.ndarray

    def metrics(self, i: int) -> dict[str, Any]:
        return {**super().metrics(i),
                "power_law": {"a": float(self.a[i]), "b": float(self.b[i]),
                              "S": float(self.a[i] - self.b[i]), "r2": float(self.r2[i])}}


@dataclass(frozen=True)
class DenseLayout:
    """The fixed part of a dense design: input, classes, stem geometry, compression, BC.

    Genotype row (values, not indices): ``[c_0, g_1..g_S, L_1..L_S, k_1..k_S]``.
    """

    stages: int = 3
    in_channels: int = 3
    num_classes: int = 10
    resolution: int = 32
    stem_k: int = 3
    stem_stride: int = 1
    stem_pool: bool = False
    compression: float = 0.5
    bottleneck: bool = True
    bottleneck_width: int = 4
    alpha: tuple[float, ...] | None = None
    beta: float = DEFAULT_DENSE_BETA
    name: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.compression <= 1:
            raise InvalidSpec(f"compression must be in (0, 1], got {self.compression}")
        if self.beta < 0 or not math.isfinite(self.beta):
            raise InvalidSpec(f"beta must be a non-negative number, got {self.beta}")
        self.sides()

    @classmethod
    def from_spec(cls, spec: ArchSpec, resolution: int | None = None, *,
                  alpha: Sequence[float] | None = None,
                  beta: float = DEFAULT_DENSE_BETA) -> DenseLayout:
        """The layout of a ``densenet`` spec (all stages must share the BC options)."""
        if not isinstance(spec, DenseNetSpec):
            raise InvalidSpec(f"expected a densenet spec, got space {spec.space!r}")
        if spec.connections is not None:
            raise InvalidSpec("the dense design space has full connectivity; this spec has "
                              "connection masks")
        bn = {(s.bottleneck, s.bottleneck_width) for s in spec.stages}
        if len(bn) != 1:
            raise InvalidSpec("all stages of a dense design share one bottleneck setting")
        (bott, bw), = bn
        return cls(stages=len(spec.stages), in_channels=spec.in_channels,
                   num_classes=spec.num_classes, resolution=spec._res(resolution),
                   stem_k=spec.stem.k, stem_stride=spec.stem.stride, stem_pool=spec.stem.pool,
                   compression=spec.compression, bottleneck=bott, bottleneck_width=bw,
                   alpha=None if alpha is None else tuple(alpha), beta=float(beta))

    def sides(self) -> list[int]:
        """Feature-map side of each stage."""
        return dense_sides(self.resolution, self.stem_k, self.stem_stride, self.stem_pool,
                           self.stages)

    @property
    def stem_side(self) -> int:
        return conv_out(self.resolution, self.stem_k, self.stem_stride)

    @property
    def width(self) -> int:
        return 1 + 3 * self.stages

    def stem_cost(self, c0: Any) -> tuple[float, np.ndarray, np.ndarray]:
        """``(t, params, macs)`` of the stem conv with ``c0`` output channels."""
        c0 = np.asarray(c0, dtype=float)
        fan = float(self.in_channels * self.stem_k**2)
        params = fan * c0 + (2.0 * c0 if self.stem_pool else 0.0)
        return 0.5 * math.log(fan), params, fan * c0 * float(self.stem_side) ** 2

    def head_cost(self, c: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(params, macs)`` of the final BN and the classifier on ``c`` channels."""
        c = np.asarray(c, dtype=float)
        k = float(self.num_classes)
        return 2.0 * c + (c * k + k if k > 0 else 0.0), c * k

    def stage(self, w0: Any, g: Any, L: Any, k: Any, i: int) -> StageCost:
        return dense_stage(w0, g, L, k, self.sides()[i], bottleneck=self.bottleneck,
                           bottleneck_width=self.bottleneck_width)

    def split(self, g: np.ndarray) -> tuple[np.ndarray, ...]:
        s = self.stages
        return g[:, 0], g[:, 1: s + 1], g[:, s + 1: 2 * s + 1], g[:, 2 * s + 1:]

    def encode(self, spec: ArchSpec) -> np.ndarray:
        other = DenseLayout.from_spec(spec, self.resolution, beta=self.beta)
        if other.stages != self.stages:
            raise InvalidSpec(f"spec has {other.stages} stages, the search {self.stages}")
        st = spec.stages  # type: ignore[attr-defined]
        return np.asarray([spec.stem.out, *(s.growth for s in st), *(s.layers for s in st),  # type: ignore[attr-defined]
                           *(s.k for s in st)], dtype=np.int64)

    def decode(self, row: np.ndarray, name: str | None = None) -> DenseNetSpec:
        c0, g, L, k = self.split(np.asarray(row, dtype=np.int64)[None, :])
        return DenseNetSpec(
            name=name or self.name, in_channels=self.in_channels, num_classes=self.num_classes,
            resolution=self.resolution,
            stem=dict(out=int(c0[0]), k=self.stem_k, stride=self.stem_stride,
                      pool=self.stem_pool),
            stages=[dict(growth=int(g[0, i]), layers=int(L[0, i]), k=int(k[0, i]),
                         bottleneck=self.bottleneck, bottleneck_width=self.bottleneck_width)
                    for i in range(self.stages)],
            compression=self.compression)

    def evaluate(self, g: np.ndarray) -> DenseEval:
        """Costs, stage entropies (closed form), rho, power law and objective of N designs."""
        g = np.asarray(g, dtype=np.int64)
        if g.ndim != 2 or g.shape[1] != self.width:
            raise InvalidSpec(f"genotype batch must have shape (N, {self.width}), got {g.shape}")
        c0, gr, ll, kk = self.split(g)
        sides = self.sides()
        t0, params, macs = self.stem_cost(c0)
        cum = np.full(len(g), t0)
        layers = np.ones(len(g))
        c = c0.astype(float)
        hs, rhos = [], []
        for i in range(self.stages):
            w0 = c
            if i > 0:
                w0, t, p, m = transition(c, sides[i - 1], self.compression)
                cum = cum + t
                layers = layers + 1.0
                params = params + p
                macs = macs + m
            st = self.stage(w0, gr[:, i], ll[:, i], kk[:, i], i)
            cum = cum + st.t_sum
            layers = layers + st.layers
            params = params + st.params
            macs = macs + st.macs
            c = st.c_out
            hs.append((np.log(c) + 2.0 * math.log(sides[i])) * cum)
            rhos.append(layers / np.exp(2.0 * cum / layers))
        hp, hm = self.head_cost(c)
        params = params + hp
        macs = macs + hm
        h = np.stack(hs, axis=1)
        rho = np.stack(rhos, axis=1)
        entropy = h @ stage_weights(self.stages, self.alpha)
        a, b, r2 = fit_power_law(h)
        return DenseEval(macs=macs, params=params, layers=layers,
                         effectiveness=rho.max(axis=1), stage_entropies=h,
                         stage_effectiveness=rho, entropy=entropy,
                         depth_penalty=np.zeros(len(g)), objective=entropy + self.beta * (a - b),
                         a=a, b=b, r2=r2)
