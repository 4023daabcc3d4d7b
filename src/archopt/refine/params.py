"""The flat parameter vector theta of a module, and back.

HBDE works on theta, the concatenation of a module's *trainable* parameters in
``named_parameters()`` order: conv / linear weights and biases and BatchNorm affine parameters.
Buffers (BatchNorm running statistics) are not part of theta; they stay as the pre-trained model
left them and the model is evaluated in eval mode (specs/hbde.md section 1, step 1).

Source: Khosrowshahli et al., "Massive Dimensions Reduction and Hybridization with
Meta-heuristics in Deep Learning", arXiv 2408.07194, section 3 (the parameter vector that is
blocked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from archopt.errors import ArchoptError

__all__ = ["ParameterLayout"]


@dataclass(frozen=True)
class ParameterLayout:
    """Where each trainable tensor of a module lives in the flat vector theta.

    Attributes:
        names: dotted parameter names, in ``named_parameters()`` order (tied parameters once).
        shapes: their shapes.
        offsets: start of each tensor in theta; ``offsets[i] + numel(shapes[i])`` is its end.
        dimensions: D, the length of theta.
        dtype: the parameters' floating dtype (all must share one).
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]
    dimensions: int
    dtype: torch.dtype

    @classmethod
    def of(cls, module: nn.Module) -> ParameterLayout:
        """The layout of ``module``'s parameters that have ``requires_grad``.

        Raises: ArchoptError when the module has no trainable parameters or mixes dtypes.
        """
        names, shapes, offsets, dtypes = [], [], [], set()
        off = 0
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            names.append(name)
            shapes.append(tuple(p.shape))
            offsets.append(off)
            dtypes.add(p.dtype)
            off += p.numel()
        if not names:
            raise ArchoptError("the model has no trainable parameters to refine")
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
            raise ArchoptError(f"trainable parameters must share one floating dtype, got "
                               f"{sorted(str(d) for d in dtypes)}")
        return cls(tuple(names), tuple(shapes), tuple(offsets), off, dtypes.pop())

    def numels(self) -> list[int]:
        return [int(torch.Size(s).numel()) for s in self.shapes]

    def positions(self, name: str) -> torch.Tensor:
        """(numel,) int64: where the tensor ``name`` lies in theta.

        Raises: ArchoptError for a name that is not a trainable parameter.
        """
        if name not in self.names:
            raise ArchoptError(f"{name!r} is not a trainable parameter of the model")
        i = self.names.index(name)
        return torch.arange(self.offsets[i], self.offsets[i] + self.numels()[i])

    def tensor_std(self, theta: torch.Tensor) -> torch.Tensor:
        """(D,) float64: for every entry of theta, the standard deviation (population, ddof 0)
        of the tensor it belongs to (0 for a one-element tensor)."""
        t = theta.detach().to("cpu", torch.float64)
        parts = torch.split(t, self.numels())
        return torch.cat([torch.full_like(p, float(p.std(correction=0))) for p in parts])

    def flatten(self, module: nn.Module) -> torch.Tensor:
        """theta: (D,) detached copy of the module's trainable parameters (its device)."""
        params = dict(module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names]).clone()

    def split(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``theta`` as named tensors.

        (D,) -> {name: shape}; (P, D) -> {name: (P, *shape)}.

        Raises: ArchoptError when the last dimension is not D.
        """
        if theta.shape[-1] != self.dimensions:
            raise ArchoptError(f"parameter vector has {theta.shape[-1]} entries, the model "
                               f"needs {self.dimensions}")
        lead = tuple(theta.shape[:-1])
        chunks = torch.split(theta, self.numels(), dim=-1)
        return {n: c.reshape(*lead, *s)
                for n, c, s in zip(self.names, chunks, self.shapes, strict=True)}

    @torch.no_grad()
    def load(self, module: nn.Module, theta: torch.Tensor) -> None:
        """Copy ``theta`` (D,) into the module's parameters in place."""
        params = dict(module.named_parameters())
        for name, value in self.split(theta).items():
            params[name].copy_(value)
