"""Vectorised DeepMAD scoring and mutation for the ``mlp`` space.

MLP form of DeepMAD (Shen et al., CVPR 2023, section 3, the MLP case; specs/deepmad.md
section 6): for hidden widths ``w_1..w_L``

    entropy  H   = sum_i log w_i                     (up to constants)
    effectiveness rho = L / exp(mean_i log w_i)      (depth / geometric-mean width)

and the objective is H (no depth-uniformity penalty: an MLP has no superblocks). Budgets:
params, MACs (= the weight multiplies for one example), layers (hidden + output layer) and rho.

Genotype row: ``[L, w_1, ..., w_Lmax]`` with zeros after the L-th width, so a batch is an
``(N, 1 + Lmax)`` int64 array. Mutations (our extension of the CNN rules to a variable depth):
with probability 1/2 scale one hidden width by a factor from {1.5, 1.25, 0.8, 0.6, 0.5}
(rounded to a multiple of 8, at least 8, at most ``max_width``); with 1/4 duplicate a random
hidden layer (insert a copy next to it); with 1/4 delete a random hidden layer (keeping one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from archopt.errors import InvalidSpec
from archopt.spaces import MLPSpec
from archopt.spaces.base import ArchSpec

from .cnn import round8
from .scores import BatchScores

__all__ = ["MLPEval", "MLPLayout"]

_SCALES = np.array([1.5, 1.25, 0.8, 0.6, 0.5])


class MLPEval(BatchScores):
    """Scores of N MLP candidates (see :class:`BatchScores`): ``stage_entropies`` holds the
    per-layer terms ``log w_i`` (zero-padded to the maximum depth), ``objective = entropy``."""

    def metrics(self, i: int) -> dict:
        m = super().metrics(i)
        m["stage_entropies"] = [x for x in m["stage_entropies"] if x > 0]
        m["stage_effectiveness"] = m["stage_effectiveness"][:1]
        return m


@dataclass(frozen=True)
class MLPLayout:
    """The fixed part of an MLP search: input features, outputs, activation, bias, max depth."""

    in_features: int
    num_classes: int
    activation: str = "relu"
    bias: bool = True
    max_layers: int = 64
    max_width: int = 4096
    name: str | None = None

    @classmethod
    def from_spec(cls, spec: ArchSpec, *, max_layers: int = 64,
                  max_width: int = 4096) -> MLPLayout:
        if not isinstance(spec, MLPSpec):
            raise InvalidSpec(f"expected an mlp spec, got space {spec.space!r}")
        if spec.unit_masks is not None:
            raise InvalidSpec("the mlp design search starts from a spec without unit masks")
        if len(spec.widths) > max_layers:
            raise InvalidSpec(f"seed has {len(spec.widths)} hidden layers, over the search's "
                              f"maximum of {max_layers}")
        return cls(spec.in_features, spec.num_classes, spec.activation, spec.bias,
                   max_layers, max_width)

    @property
    def width(self) -> int:
        return 1 + self.max_layers

    def encode(self, spec: ArchSpec) -> np.ndarray:
        w = list(spec.widths)  # type: ignore[attr-defined]
        if not w:
            raise InvalidSpec("an mlp seed needs at least one hidden layer")
        row = np.zeros(self.width, dtype=np.int64)
        row[0] = len(w)
        row[1: 1 + len(w)] = w
        return row

    def decode(self, row: np.ndarray, name: str | None = None) -> ArchSpec:
        n = int(row[0])
        return MLPSpec(name=name or self.name, in_features=self.in_features,
                       widths=[int(x) for x in row[1: 1 + n]], num_classes=self.num_classes,
                       activation=self.activation, bias=self.bias)  # type: ignore[arg-type]

    def evaluate(self, g: np.ndarray) -> MLPEval:
        """Params, MACs, layers, entropy and effectiveness of N genotypes (exact integers)."""
        g = np.asarray(g, dtype=np.int64)
        n_layers = g[:, 0].astype(float)
        w = g[:, 1:].astype(float)
        on = w > 0
        prev = np.concatenate([np.full((len(g), 1), float(self.in_features)), w[:, :-1]], axis=1)
        bias = 1.0 if self.bias else 0.0
        macs = (prev * w).sum(axis=1)
        params = macs + bias * w.sum(axis=1)
        last = w[np.arange(len(g)), g[:, 0] - 1]
        if self.num_classes > 0:
            macs = macs + last * self.num_classes
            params = params + last * self.num_classes + bias * self.num_classes
        logw = np.where(on, np.log(np.where(on, w, 1.0)), 0.0)
        h = logw.sum(axis=1)
        rho = n_layers / np.exp(h / n_layers)
        layers = n_layers + (1.0 if self.num_classes > 0 else 0.0)
        return MLPEval(macs=macs, params=params, layers=layers, effectiveness=rho,
                       stage_entropies=logw, stage_effectiveness=rho[:, None], entropy=h,
                       depth_penalty=np.zeros(len(g)), objective=h.copy())

    def mutate(self, parents: np.ndarray, rng: np.random.Generator,
               n_mutations: int = 2) -> np.ndarray:
        """Children of ``parents`` (see module docstring for the rules)."""
        g = np.array(parents, dtype=np.int64, copy=True)
        n = len(g)
        cols = np.arange(self.max_layers)[None, :]
        for _ in range(n_mutations):
            op = rng.random(n)
            pos = (rng.random(n) * g[:, 0]).astype(np.int64)  # a hidden layer of each row
            scale = _SCALES[rng.integers(0, len(_SCALES), n)]
            w = g[:, 1:]
            r = np.nonzero(op < 0.5)[0]
            w[r, pos[r]] = np.minimum(round8(w[r, pos[r]] * scale[r]), self.max_width)
            add = np.nonzero((op >= 0.5) & (op < 0.75) & (g[:, 0] < self.max_layers))[0]
            if add.size:
                src = cols - (cols > pos[add, None])
                w[add] = np.take_along_axis(w[add], src, axis=1)
                g[add, 0] += 1
            rem = np.nonzero((op >= 0.75) & (g[:, 0] > 1))[0]
            if rem.size:
                src = np.minimum(cols + (cols >= pos[rem, None]), self.max_layers - 1)
                w[rem] = np.take_along_axis(w[rem], src, axis=1)
                g[rem, 0] -= 1
            w[cols >= g[:, :1]] = 0
        return g


def mlp_seed(in_features: int, num_classes: int, rho: float | None) -> MLPSpec:
    """A one-hidden-layer seed: width 64, or the smallest multiple of 8 with ``1/w <= rho``."""
    width = 64
    if rho is not None:
        width = max(width, int(8 * math.ceil(1.0 / rho / 8.0)))
    return MLPSpec(in_features=in_features, widths=[width], num_classes=num_classes)
