"""Does the latent space place functionally similar MLPs close together? (the SWAT-NN premise)

SWAT-NN (arXiv 2410.08339, abstract and section 3.2) claims that its encoder "embeds pairs of
neural networks with similar functionalities close to each other (irrespective of their
architectures and weights)". This module measures that claim with pairs of MLPs whose functional
relation is known by construction:

- *equivalent* pairs: the same function in another architecture or weight arrangement, by the
  constructions of :mod:`archopt.latent.equivalence` (``split``, ``permute``, ``dead``, and
  ``deeper``: a 1-hidden-layer MLP and the same function with 1..3 more hidden layers, for
  leaky-ReLU / linear only);

- *unrelated* pairs: an MLP and an independently drawn MLP of the family with as many hidden
  layers as its equivalent partner (so that both partners go through the same encoder);
- *perturbed* pairs: an MLP and a copy whose existing weights got Gaussian noise
  (``PERTURB_SIGMAS``): a graded range of functional distances at a fixed architecture.

Figures (:func:`geometry`), with ``d_z = ||E(a) - E(b)||_2`` the latent distance and
``d_y = sqrt(mean_p (f_a(x_p) - f_b(x_p))^2)`` the output distance on a fixed input sample
(float64; below 1e-9 it is rounding noise and counts as 0, so equivalent pairs tie):

- ``spearman``: Spearman's rank correlation between ``d_z`` and ``d_y`` over all pairs
  (equivalent, unrelated and perturbed), and over the unrelated / perturbed pairs alone;
- ``closer[kind]``: the fraction of comparisons, over anchors ``a`` with an equivalent ``a'`` and
  the unrelated ``b`` drawn for the same anchor, in which ``d_z(a, a') < d_z(a, b)`` (0.5 is
  chance; 1 means every equivalent partner is closer than every unrelated network);
- ``ratio[kind]``: median ``d_z`` of that kind's pairs over the median ``d_z`` of the unrelated
  pairs of the same anchors (scale-free; 0 would be a perfectly invariant encoder).

These are ours (the paper reports no such measurement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from scipy.stats import spearmanr

from archopt.latent.autoencoder import MultiScaleAutoencoder
from archopt.latent.encoding import ArrayLayout, array_forward, decode, encode
from archopt.latent.equivalence import EQUIVALENCES, HOMOGENEOUS, Weights, equivalent_variant
from archopt.latent.generator import PAPER_SPARSITIES, random_mlps

__all__ = ["PERTURB_SIGMAS", "PairSet", "embed", "geometry", "make_pairs", "outputs"]

#: Noise levels (absolute, in weight units; the family's weights are U(-10, 10)) of the
#: perturbed pairs.
PERTURB_SIGMAS = (0.3, 1.0, 3.0)
#: Output distances below this are rounding noise of equal functions and count as 0 (ties).
_ZERO = 1e-9

@dataclass
class PairSet:
    """Networks and the pairs among them.

    Attributes:
        nets: weight lists (float64).
        pairs: ``(i, j, kind, anchor)``: networks ``nets[i]`` and ``nets[j]``, the pair's kind
            (an equivalence, ``"unrelated"`` or ``"perturbed:<sigma>"``) and the anchor network
            (``i``) whose unrelated partners it is compared with.
    """

    nets: list[Weights] = field(default_factory=list)
    pairs: list[tuple[int, int, str, int]] = field(default_factory=list)

    def add(self, weights: Sequence[torch.Tensor]) -> int:
        self.nets.append([w.double() for w in weights])
        return len(self.nets) - 1

    def kinds(self) -> list[str]:
        return sorted({k for _, _, k, _ in self.pairs})


def _family(n: int, depth: int, layout: ArrayLayout, g: torch.Generator,
            widths: tuple[int, int], weight_range: float) -> list[Weights]:
    arrays = random_mlps(n, depth, layout, generator=g,
                         sparsity=[PAPER_SPARSITIES[i % len(PAPER_SPARSITIES)] for i in range(n)],
                         widths=widths, weight_range=weight_range, dtype=torch.float64)
    return [decode(a, layout) for a in arrays]


def make_pairs(layout: ArrayLayout, activation: str, negative_slope: float = 0.1, *,
               bases: int = 64, unrelated: int = 8, seed: int = 0,
               widths: tuple[int, int] = (3, 6), weight_range: float = 10.0,
               sigmas: Sequence[float] = PERTURB_SIGMAS) -> PairSet:
    """The pair set of :func:`geometry`: for every depth ``1..max_depth``, ``bases`` random family
    MLPs (the generator's sparsities in turn), each with one variant per applicable equivalence
    (``deeper`` is drawn on extra depth-1 bases, ``bases`` of them), ``unrelated`` independent
    family MLPs with the depth of the equivalent partners (the anchor's own; for ``deeper`` that
    of the deeper variant) and one perturbed copy per ``sigmas``.

    Returns: the :class:`PairSet` (all randomness from ``seed``).
    """
    g = torch.Generator().manual_seed(int(seed))
    ps = PairSet()
    depths = list(layout.depths)

    def partners(anchor: int, depth: int) -> None:
        for net in _family(unrelated, depth, layout, g, widths, weight_range):
            ps.pairs.append((anchor, ps.add(net), "unrelated", anchor))

    for d in depths:
        for base in _family(bases, d, layout, g, widths, weight_range):
            i = ps.add(base)
            for kind in ("split", "permute", "dead"):
                v = equivalent_variant(base, kind, activation=activation,
                                       negative_slope=negative_slope, layout=layout, generator=g,
                                       weight_range=weight_range)
                if v is not None:
                    ps.pairs.append((i, ps.add(v), kind, i))
            for s in sigmas:
                noisy = [w + s * torch.randn(w.shape, generator=g, dtype=w.dtype) * (w != 0)
                         for w in ps.nets[i]]
                ps.pairs.append((i, ps.add(noisy), f"perturbed:{s:g}", i))
            partners(i, d)
    if activation in HOMOGENEOUS and layout.max_depth > 1:
        for base in _family(bases, 1, layout, g, widths, weight_range):
            i = ps.add(base)
            v = equivalent_variant(base, "deeper", activation=activation,
                                   negative_slope=negative_slope, layout=layout, generator=g)
            if v is not None:
                ps.pairs.append((i, ps.add(v), "deeper", i))
                partners(i, len(v) - 1)
    return ps


def outputs(nets: Sequence[Sequence[torch.Tensor]], x: torch.Tensor, layout: ArrayLayout,
            activation: str, negative_slope: float = 0.1) -> torch.Tensor:
    """Outputs ``(len(nets), P)`` (float64) of every network on the inputs ``x`` ``(P, n_in)``."""
    x = x.double()
    return torch.stack([array_forward(encode(w, layout).unsqueeze(0), x, layout, activation,
                                      negative_slope)[0] for w in nets])


@torch.no_grad()
def embed(model: MultiScaleAutoencoder, nets: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Latent points ``(len(nets), latent_dim)`` of the networks, in the order given (float32
    arrays through the depth's encoder)."""
    lay = model.layout
    dev = next(model.parameters()).device
    arrays = [encode([w.float() for w in ws], lay).to(dev) for ws in nets]
    depth = torch.tensor([lay.depth_of(a.shape[1]) for a in arrays])
    z = torch.empty(len(nets), model.config.latent_dim, device=dev)
    for d in sorted(set(depth.tolist())):
        idx = torch.nonzero(depth == d).flatten()
        z[idx.to(dev)] = model.encode({d: torch.stack([arrays[int(i)] for i in idx])})
    return z.cpu()


def _rho(a: torch.Tensor, b: torch.Tensor) -> float | None:
    if a.numel() < 3:
        return None
    return float(spearmanr(a.numpy(), b.numpy()).statistic)


def geometry(model: MultiScaleAutoencoder, pairs: PairSet, x: torch.Tensor,
             y: torch.Tensor | None = None) -> dict[str, Any]:
    """The figures of the module docstring for one autoencoder.

    Args:
        model: the autoencoder (its encoder is used).
        pairs: from :func:`make_pairs`.
        x: ``(P, n_in)`` the fixed inputs of the output distance.
        y: the networks' outputs on ``x`` (``outputs(pairs.nets, x, ...)``), to share between
            models; computed when None.

    Returns: ``{"spearman": {"all", "unrelated", "perturbed"}, "closer": {kind: fraction,
    "equivalent": all equivalences pooled}, "ratio": {kind: ...}, "pairs": {kind: count},
    "max_equivalent_output_distance"}``.
    """
    cfg = model.config
    if y is None:
        y = outputs(pairs.nets, x, model.layout, cfg.activation, cfg.negative_slope)
    z = embed(model, pairs.nets).double()
    i = torch.tensor([p[0] for p in pairs.pairs])
    j = torch.tensor([p[1] for p in pairs.pairs])
    kinds = [p[2] for p in pairs.pairs]
    anchors = [p[3] for p in pairs.pairs]
    dz = (z[i] - z[j]).norm(dim=1)
    dy = ((y[i] - y[j]) ** 2).mean(1).sqrt()
    dy = torch.where(dy < _ZERO, torch.zeros_like(dy), dy)  # rounding noise of equal functions

    def sel(pred: Any) -> torch.Tensor:
        return torch.tensor([bool(pred(k)) for k in kinds])

    unrel = sel(lambda k: k == "unrelated")
    pert = sel(lambda k: k.startswith("perturbed"))
    equiv_kinds = [k for k in EQUIVALENCES if k in kinds]
    by_anchor: dict[int, list[float]] = {}
    for n, (k, a) in enumerate(zip(kinds, anchors, strict=True)):
        if k == "unrelated":
            by_anchor.setdefault(a, []).append(float(dz[n]))
    closer: dict[str, float] = {}
    ratio: dict[str, float] = {}
    wins_all, total_all = 0, 0
    for kind in equiv_kinds:
        wins, total, eq_d, un_d = 0, 0, [], []
        for n, (k, a) in enumerate(zip(kinds, anchors, strict=True)):
            if k != kind:
                continue
            others = torch.tensor(by_anchor.get(a, []))
            wins += int((float(dz[n]) < others).sum())
            total += others.numel()
            eq_d.append(float(dz[n]))
            un_d.extend(others.tolist())
        closer[kind] = wins / max(total, 1)
        ratio[kind] = float(torch.tensor(eq_d).median() / torch.tensor(un_d).median())
        wins_all += wins
        total_all += total
    closer["equivalent"] = wins_all / max(total_all, 1)
    eq_mask = sel(lambda k: k in EQUIVALENCES)
    return {
        "spearman": {"all": _rho(dz, dy), "unrelated": _rho(dz[unrel], dy[unrel]),
                     "perturbed": _rho(dz[pert], dy[pert])},
        "closer": closer, "ratio": ratio,
        "pairs": {k: kinds.count(k) for k in sorted(set(kinds))},
        "max_equivalent_output_distance": float(dy[eq_mask].max()) if bool(eq_mask.any())
        else None,
    }
