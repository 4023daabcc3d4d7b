"""Masked supernets: networks whose structure is a binary vector ``M`` set before each forward.

A :class:`Supernet` owns ``d`` structure bits split into *mask sites* (a hidden layer's units,
a consumer's input connections, a user module's channels), each bit with a complexity cost
``c_i``. Before a forward pass the training loop sets ``lambda`` structures at once
(``set_structure(masks)``, masks ``(lambda, d)``); the forward pass then takes one minibatch of
``N`` examples and returns ``lambda * N`` rows: rows ``[g N, (g + 1) N)`` are the minibatch seen
through structure ``g``. Every example of a group shares that group's mask (one structure per
minibatch, unlike dropout). Computing the ``lambda`` structures in one batched pass is exactly
``lambda`` separate passes (BatchNorm takes its statistics per group), and it is how the method
costs about the same as ordinary training with a ``lambda``-times larger batch.

With no structure set (``set_structure(None)``) the supernet is the full network and returns
``N`` rows.

:class:`HookedSupernet` gives any ``nn.Module`` structure bits: :meth:`HookedSupernet.add_site`
registers a forward hook that multiplies a submodule's output units / channels (dim 1) by the
current mask.

Source: Shirakawa et al., AAAI 2018 (one structure per minibatch, lambda = 2 structures per
step); Saito et al., ICANN 2019, Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from archopt.errors import ArchoptError

__all__ = ["HookedSupernet", "MaskSite", "Supernet", "apply_group_mask", "group_batch_norm"]


class MaskSite(NamedTuple):
    """A contiguous block of structure bits.

    Attributes:
        name: where the bits act (e.g. ``"layers.0"``, ``"stages.1.layers.4"``).
        offset: index of the site's first bit in ``M``.
        size: number of bits.
        costs: ``(size,)`` complexity cost of each bit (``c_i``).
    """

    name: str
    offset: int
    size: int
    costs: np.ndarray

    @property
    def bits(self) -> slice:
        return slice(self.offset, self.offset + self.size)


def apply_group_mask(h: torch.Tensor, mask: torch.Tensor, *, expanded: bool) -> torch.Tensor:
    """Multiply features by per-group masks along dim 1.

    Args:
        h: ``(lambda * N, C, ...)`` when ``expanded`` (rows grouped by structure), else
            ``(N, C, ...)`` shared by all groups (it is broadcast to every group).
        mask: ``(lambda, C)`` float masks.
        expanded: whether ``h`` already has ``lambda`` groups.

    Returns: ``(lambda * N, C, ...)``: group ``g`` is ``h`` (of group g) times ``mask[g]``.
    """
    lam, c = mask.shape
    if h.shape[1] != c:
        raise ArchoptError(f"mask has {c} entries but the features have {h.shape[1]} channels")
    hv = h.view(lam, h.shape[0] // lam, *h.shape[1:]) if expanded else h.unsqueeze(0)
    m = mask.view(lam, 1, c, *([1] * (h.dim() - 2)))
    out = hv * m
    return out.reshape(-1, *h.shape[1:])


def group_batch_norm(bn: nn.Module, x: torch.Tensor, groups: int) -> torch.Tensor:
    """Apply BatchNorm with statistics taken per group of rows (in training mode).

    ``x`` holds ``groups`` equal groups of rows; in training mode each group is normalised with
    its own batch statistics and updates the running statistics in turn -- exactly what
    ``groups`` separate forward passes would do. In eval mode (running statistics) one call.
    """
    if groups <= 1 or not bn.training or not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        return bn(x)
    return torch.cat([bn(chunk) for chunk in x.chunk(groups)])


class Supernet(nn.Module):
    """Base class: structure bits, their costs, and the current structure(s).

    Subclasses register sites with :meth:`_add_site` and read the current per-site masks with
    :meth:`site_mask` inside ``forward``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sites: list[MaskSite] = []
        self._masks: torch.Tensor | None = None

    # -- bits -------------------------------------------------------------------------------
    def _add_site(self, name: str, size: int, costs: Sequence[float] | np.ndarray | None = None
                  ) -> MaskSite:
        offset = self.d
        c = np.ones(size) if costs is None else np.asarray(costs, dtype=np.float64)
        if c.shape != (size,):
            raise ArchoptError(f"site {name!r}: expected {size} costs, got shape {c.shape}")
        if np.any(c < 0) or not np.all(np.isfinite(c)):
            raise ArchoptError(f"site {name!r}: costs must be finite and >= 0")
        site = MaskSite(name, offset, int(size), c)
        self.sites.append(site)
        return site

    @property
    def d(self) -> int:
        """Number of structure bits."""
        return sum(s.size for s in self.sites)

    @property
    def costs(self) -> np.ndarray:
        """``c``: the complexity cost of every bit, ``(d,)`` float64."""
        if not self.sites:
            return np.zeros(0)
        return np.concatenate([s.costs for s in self.sites])

    def site(self, name: str) -> MaskSite:
        for s in self.sites:
            if s.name == name:
                return s
        raise ArchoptError(f"no mask site named {name!r} (have: "
                           f"{', '.join(s.name for s in self.sites)})")

    def split(self, mask: np.ndarray) -> dict[str, np.ndarray]:
        """A ``(d,)`` vector split by site name."""
        mask = np.asarray(mask)
        return {s.name: mask[s.bits] for s in self.sites}

    # -- structure --------------------------------------------------------------------------
    def canonical(self, masks: np.ndarray) -> np.ndarray:
        """The canonical form of structures ``(lambda, d)`` bool: bits that cannot affect the
        output turned off. The identity here; DenseNet removes connections from dead layers."""
        return masks

    def _check_masks(self, masks: Any) -> np.ndarray:
        m = np.asarray(masks.detach().cpu() if isinstance(masks, torch.Tensor) else masks)
        if m.ndim == 1:
            m = m[None]
        if m.ndim != 2 or m.shape[1] != self.d:
            raise ArchoptError(f"structure masks: expected shape (d,) or (lambda, d) with "
                               f"d = {self.d}, got {np.shape(masks)}")
        if m.dtype != np.bool_:
            if not np.all((m == 0) | (m == 1)):
                raise ArchoptError("structure masks must hold only 0/1 (or bool) values")
            m = m.astype(bool)
        return m

    def set_structure(self, masks: Any, scale: Any = None) -> None:
        """Set the structure(s) of the following forward passes.

        Args:
            masks: None (the full network), a ``(d,)`` structure or ``(lambda, d)`` structures
                (bool or 0/1; numpy or torch). They are canonicalised (:meth:`canonical`).
            scale: optional ``(d,)`` positive factors: a kept bit multiplies its units by
                ``scale_i`` instead of 1 (e.g. ``theta``, the weight-scaling inference rule of
                dropout; see :func:`archopt.structure.finetune.adjust_mstar`).

        Raises: ArchoptError for a wrong shape, non-binary masks or a bad scale.
        """
        if masks is None:
            self._masks = None
            return
        m = self.canonical(self._check_masks(masks)).astype(np.float32)
        if scale is not None:
            m = m * self.check_scale(scale)[None].astype(np.float32)
        dev = next(iter(self.parameters()), torch.zeros(0)).device
        self._masks = torch.as_tensor(m, dtype=torch.float32, device=dev)

    def check_scale(self, scale: Any) -> np.ndarray:
        """``scale`` as a ``(d,)`` float64 array of finite positive factors.

        Raises: ArchoptError otherwise."""
        s = np.asarray(scale, dtype=np.float64).ravel()
        if s.shape != (self.d,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ArchoptError(f"scale: expected {self.d} finite positive factors, got shape "
                               f"{np.shape(scale)}")
        return s

    @contextmanager
    def structure(self, masks: Any, scale: Any = None) -> Iterator[Supernet]:
        """``with net.structure(M): net(x)`` -- set, then restore the previous structure."""
        old = self._masks
        self.set_structure(masks, scale)
        try:
            yield self
        finally:
            self._masks = old

    @property
    def num_structures(self) -> int:
        """``lambda``: the number of structures a forward pass evaluates (1 with none set)."""
        return 1 if self._masks is None else int(self._masks.shape[0])

    def site_mask(self, site: MaskSite) -> torch.Tensor | None:
        """The current ``(lambda, size)`` masks of a site (None when no structure is set)."""
        return None if self._masks is None else self._masks[:, site.bits]

    # -- compaction -------------------------------------------------------------------------
    def compact(self, mask: Any, scale: np.ndarray | None = None) -> tuple[nn.Module, Any]:
        """A physically smaller ``(module, spec)`` computing what this supernet computes with
        structure ``mask`` (and per-bit ``scale``, folded into the weights that read the
        scaled units; see :mod:`archopt.structure.compaction`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be compacted")


class HookedSupernet(Supernet):
    """Structure bits for any module's units or channels, through forward hooks.

    Args:
        module: the user's network; its forward takes a batch and returns one row per example.
        separate_passes: run the ``lambda`` structures as separate forward passes (exact for
            modules with BatchNorm or other batch-coupled layers); False runs them as one pass
            over the input repeated ``lambda`` times (faster; exact for row-independent
            layers).

    Example::

        net = HookedSupernet(my_cnn)
        net.add_site("features.3", 64)             # mask the 64 output channels of a ReLU
        net.set_structure(mask)                    # (64,) or (lambda, 64)
    """

    def __init__(self, module: nn.Module, *, separate_passes: bool = False) -> None:
        super().__init__()
        self.module = module
        self.separate_passes = separate_passes
        self._hooks: list[Any] = []
        self._pass: int | None = None  # which group a separate pass evaluates

    def add_site(self, target: str | nn.Module, units: int, *,
                 costs: Sequence[float] | np.ndarray | None = None,
                 name: str | None = None) -> MaskSite:
        """Mask ``units`` entries along dim 1 of ``target``'s output (a submodule or its dotted
        name). Put the site after the activation (mask times ``f(x)``, as the paper does); a
        hook on a module shared by several layers would mask all of them.

        Args:
            target: the submodule, or its name in ``module.named_modules()``.
            units: size of dim 1 of its output.
            costs: per-unit complexity ``c_i`` (default 1 each).
            name: the site's name (default: the submodule's name).

        Raises: ArchoptError for an unknown submodule name or a bad ``units`` / ``costs``.
        """
        if isinstance(target, str):
            try:
                sub = self.module.get_submodule(target)
            except AttributeError:
                raise ArchoptError(f"module has no submodule named {target!r}") from None
            site_name = name or target
        else:
            sub = target
            names = {m: n for n, m in self.module.named_modules()}
            if sub not in names:
                raise ArchoptError("target is not a submodule of the wrapped module")
            site_name = name or names[sub]
        if int(units) < 1:
            raise ArchoptError(f"a mask site needs >= 1 units, got {units}")
        site = self._add_site(site_name, int(units), costs)

        def hook(_mod: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
            m = self.site_mask(site)
            if m is None:
                return out
            if out.dim() < 2 or out.shape[1] != site.size:
                raise ArchoptError(f"site {site.name!r}: output has shape {tuple(out.shape)}, "
                                   f"expected {site.size} units in dim 1")
            if self._pass is not None:
                return apply_group_mask(out, m[self._pass:self._pass + 1], expanded=True)
            return apply_group_mask(out, m, expanded=True)

        self._hooks.append(sub.register_forward_hook(hook))
        return site

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.num_structures
        if self._masks is None:
            return self.module(x)
        if self.separate_passes:
            outs = []
            try:
                for g in range(lam):
                    self._pass = g
                    outs.append(self.module(x))
            finally:
                self._pass = None
            return torch.cat(outs)
        return self.module(x.repeat(lam, *([1] * (x.dim() - 1))))
