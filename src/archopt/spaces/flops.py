"""FLOPs as the DeepMAD / TinyNAS reference toolbox counts them, beside archopt's MACs.

archopt's cost model counts multiply-accumulates (MACs) of the convolutions and linear layers
only. The toolbox that DeepMAD's budgets come from (alibaba/lightweight-neural-architecture-search,
``tinynas/models/blocks_cnn_2d``: ``ConvKXBN.get_flops``, ``ConvKXBNRELU``, the ``ResK1KXK1`` /
``ResKXKX`` / ``ResK1DWK1`` / ``ResK1DWSEK1`` blocks, ``CnnNet.get_flops``) budgets "FLOPs" that
add, per image:

- BatchNorm: 2 per output element of every convolution (scale and shift);
- activations: 1 per output element of every main-path convolution (the stem, each inner
  conv followed by an activation, and the activation after each block's residual addition,
  which has the shape of the block's last conv);
- residual additions: 1 per output element, counted only in blocks whose shortcut has a 1x1
  projection (the toolbox adds the term inside its projection branch; identity shortcuts add
  nothing);
- pooling: 1 per input element of the 2x2 average pool on a strided block's shortcut (and,
  archopt's extension, of the stem's 3x3 max-pool, which TinyNAS stems do not have);
- a convolution's own count is its MACs (not 2x MACs: the toolbox's "FLOPs" are MACs plus the
  terms above).

The toolbox's network is headless: no global pooling or classifier is counted. Squeeze-excite
layers are left out as well (the toolbox's ``ResK1DWSEK1.get_flops`` does not add them).

The counting rules are the toolbox's; the network they are applied to is archopt's (e.g. a
``basic`` block strides its first conv, where the toolbox's ``ResKXKX`` strides its second).
The convention covers the ``resnet`` and ``mbv2`` spaces (DeepMAD's); other spaces raise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from archopt.errors import InvalidSpec
from archopt.spaces.base import ArchSpec, LayerCost

__all__ = ["FLOPS_CONVENTION", "ToolboxFlops", "toolbox_flops"]

#: Name of the convention in outputs (``archopt score``, design.json).
FLOPS_CONVENTION = "tinynas"


@dataclass(frozen=True)
class ToolboxFlops:
    """FLOPs of one image under the toolbox's convention, by term (all headless).

    Attributes:
        conv: MACs of the convolutions (SE layers and the classifier excluded).
        bn, activation, addition, pooling: the added terms (see the module docstring).
        total: their sum, the figure the toolbox compares with its ``flops`` budget.
    """

    conv: int
    bn: int
    activation: int
    addition: int
    pooling: int

    @property
    def total(self) -> int:
        return self.conv + self.bn + self.activation + self.addition + self.pooling

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "convention": FLOPS_CONVENTION}


def _block_of(name: str) -> str | None:
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[0] == "blocks" and len(parts) > 3 else None


def toolbox_flops(spec: ArchSpec, resolution: int | None = None) -> ToolboxFlops:
    """FLOPs of ``spec`` for one ``resolution`` x ``resolution`` image, counted as the DeepMAD
    reference toolbox counts them (module docstring).

    Raises: InvalidSpec for a space other than ``resnet`` / ``mbv2``, or no resolution.
    """
    if spec.space not in ("resnet", "mbv2"):
        raise InvalidSpec(f"the TinyNAS FLOPs convention covers the resnet and mbv2 spaces, "
                          f"not {spec.space}")
    rows = spec.cost_table(resolution)
    conv = bn = act = add = pool = 0
    blocks: dict[str, list[LayerCost]] = {}
    for row in rows:
        if row.kind not in ("conv", "dwconv"):
            continue  # the classifier (headless count) and squeeze-excite layers
        out = row.c_out * row.out_res * row.out_res
        conv += row.macs
        bn += 2 * out
        if row.main:
            act += out
        block = _block_of(row.name)
        if block is not None:
            blocks.setdefault(block, []).append(row)
    stem = getattr(spec, "stem", None)
    if stem is not None and stem.pool:
        first = rows[0]
        pool += first.c_out * first.out_res * first.out_res
    for block_rows in blocks.values():
        main = [r for r in block_rows if r.main]
        proj = [r for r in block_rows if ".shortcut.proj" in r.name]
        c_in, in_res = main[0].c_in, main[0].in_res
        c_out, out_res = main[-1].c_out, main[-1].out_res
        strided = out_res != in_res
        if spec.space == "resnet":
            if proj:
                add += c_out * out_res * out_res
            if strided and getattr(spec, "shortcut", "avgpool") == "avgpool":
                pool += c_in * in_res * in_res
        elif strided and c_in == c_out:  # mbv2: identity shortcut with a 2x2 average pool
            pool += c_in * in_res * in_res
    return ToolboxFlops(conv=conv, bn=bn, activation=act, addition=add, pooling=pool)
