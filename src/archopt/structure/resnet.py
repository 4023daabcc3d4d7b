"""Channel selection in a ResNet: one structure bit per inner (bottleneck) channel of each
superblock, shared by the superblock's ``L`` blocks.

A :class:`~archopt.spaces.ResNetSpec` superblock ``s`` has ``btn_s`` inner channels in each of
its blocks; bit ``i`` of site ``blocks.s`` multiplies channel ``i`` of every block of the
superblock:

- ``bottleneck`` blocks: after conv1's BN-ReLU (conv2's input) and after conv2's BN-ReLU
  (conv3's input) -- with the same bit at both places, channel ``i`` of conv1 and conv2 is
  wholly unused when the bit is 0;
- ``basic`` blocks: after conv1's BN-ReLU (conv2's input).

The mask sits after the activation (masking before BatchNorm would let BN re-introduce
non-zeros), so a structure compacts to the same family with a smaller ``btn_s``
(:meth:`MaskedResNet.compact`): conv1's output rows and BN, conv2's input (and, bottleneck,
output) channels and BN, conv3's input columns sliced; stem, shortcuts, the blocks' last BN and
the head are kept. The compact network computes what the masked supernet computes.

Costs ``c_i`` are **parameters** (not MACs): the weights channel ``i`` carries in every block of
its superblock, ``sum_j [c_in_j k1^2 + 2 + btn k^2 + 2 + out]`` for bottleneck blocks (conv1
row + its BN, conv2 + its BN, conv3 column; ``k1 = 1``) and ``sum_j [c_in_j k^2 + 2 + out k^2]``
for basic blocks. A conv2 weight of a bottleneck block joins two inner channels; it is split
half to each, so the costs of a site add up exactly to the parameters the site can remove
(``sum(c) = removable params``); the compact network's real count, quadratic in the kept
channels for conv2, is what ``weight_usage_rate`` reports.

No superblock may be empty (a :class:`~archopt.spaces.ResNetSpec` needs ``btn >= 1``): the
canonical form of a structure (:meth:`MaskedResNet.canonical`, applied to every structure the
network evaluates, the final ``M*`` included) switches on the single most probable channel of a
superblock whose bits are all 0 -- the argmax of the bound optimiser's theta
(:meth:`MaskedResNet.bind_optimizer`; the first channel when none is bound).

The supernet's parameter names equal ``spec.build()``'s, so a trained checkpoint loads as is
(:meth:`MaskedResNet.from_checkpoint`; :func:`run_resnet_structure` fine-tunes it jointly with
theta and writes the compact network).

Source: Saito, Shirakawa et al., ICANN 2019 (complexity penalty, ``c_i`` = attached weights);
Shirakawa et al., AAAI 2018; the channel-selection setting follows their unit selection.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from archopt.data import ImageDataset
from archopt.errors import InvalidSpec
from archopt.spaces.layers import ConvBN
from archopt.spaces.resnet import ResNetSpec
from archopt.structure.loop import StructureConfig
from archopt.structure.masking import Supernet, apply_group_mask, group_batch_norm
from archopt.structure.run import adapt, joint_run

if TYPE_CHECKING:
    from archopt.training import TrainConfig

__all__ = ["TASK", "MaskedResNet", "channel_costs", "run_resnet_structure"]

#: The task name ``summary.json`` / ``config.json`` record for this supernet.
TASK = "resnet-channels"


def channel_costs(spec: ResNetSpec, s: int) -> np.ndarray:
    """``c_i`` (parameters) of every inner channel of superblock ``s`` (see module docstring);
    all channels of a superblock cost the same."""
    blk = spec.blocks[s]
    c_prev = spec.stem.out if s == 0 else spec.blocks[s - 1].out
    total = 0
    for j in range(blk.L):
        c_in = c_prev if j == 0 else blk.out
        if blk.block == "bottleneck":
            total += c_in + 2 + blk.btn * blk.k**2 + 2 + blk.out
        else:
            total += c_in * blk.k**2 + 2 + blk.out * blk.k**2
    return np.full(blk.btn, float(total))


def _conv_bn(cb: ConvBN, x: torch.Tensor, groups: int) -> torch.Tensor:
    return cb.act(group_batch_norm(cb.bn, cb.conv(x), groups))


class MaskedResNet(Supernet):
    """The ResNet of ``spec`` with one bit per inner channel of each superblock.

    Args:
        spec: a :class:`~archopt.spaces.ResNetSpec` (bottleneck or basic blocks). Sites are
            named ``blocks.s``, ``btn_s`` bits each. Parameter names equal ``spec.build()``'s
            (``stem``, ``blocks``, ``head``).

    Raises: InvalidSpec for another spec family.
    """

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        if not isinstance(spec, ResNetSpec):
            raise InvalidSpec(f"channel selection needs a resnet spec, got a "
                              f"{getattr(spec, 'space', type(spec).__name__)} spec")
        self.spec = spec
        net = spec.build()
        self.stem = net.stem
        self.blocks = net.blocks
        self.head = net.head
        for s, blk in enumerate(spec.blocks):
            self._add_site(f"blocks.{s}", blk.btn, channel_costs(spec, s))
        self._preference: Callable[[], np.ndarray] | None = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str],
                        data: ImageDataset | None = None) -> MaskedResNet:
        """The supernet of a trained ResNet checkpoint (``archopt train`` / ``archopt run``),
        with its weights; ``data`` checks that the checkpoint fits the dataset.

        Raises: CheckpointError (unreadable, no spec, weights that do not fit); InvalidSpec (not
            a resnet spec, or one made for another input / number of classes).
        """
        from archopt.spaces.registry import spec_from_dict
        from archopt.training import load_checkpoint

        ckpt = load_checkpoint(path)
        if ckpt.get("spec") is None:
            raise InvalidSpec(f"{path} holds no architecture spec; channel selection needs a "
                              "checkpoint of a resnet spec")
        spec = spec_from_dict(ckpt["spec"])
        if data is not None and isinstance(spec, ResNetSpec):
            if (spec.in_channels, spec.num_classes) != (data.in_channels, data.num_classes):
                raise InvalidSpec(f"{path} was trained for {spec.in_channels} input channels "
                                  f"and {spec.num_classes} classes, not {data.name}'s "
                                  f"{data.in_channels} and {data.num_classes}")
            spec = adapt(spec, data)  # the dataset's resolution (weights do not depend on it)
        net = cls(spec)  # type: ignore[arg-type]
        net.load_state_dict(ckpt["model"], strict=True)
        return net

    # -- structure ----------------------------------------------------------------------------
    def bind_optimizer(self, opt: Any) -> None:
        """Read the fallback channel of an empty superblock from ``opt.theta`` (its argmax)."""
        self._preference = lambda: np.asarray(opt.theta, dtype=np.float64).ravel()

    def canonical(self, masks: np.ndarray) -> np.ndarray:
        """Every superblock keeps at least one channel: in a structure whose site ``s`` has no
        bit set, the most probable bit of the site (argmax of theta; the first when no
        optimiser is bound) is switched on. ``(lambda, d)`` bool -> a new array."""
        out = np.array(masks, dtype=bool, copy=True)
        pref = self._preference() if self._preference is not None else np.zeros(self.d)
        for site in self.sites:
            empty = ~out[:, site.bits].any(axis=1)
            if empty.any():
                out[empty, site.offset + int(np.argmax(pref[site.bits]))] = True
        return out

    def channels_per_superblock(self, mask: Any) -> list[int]:
        """Kept inner channels (``btn``) of each superblock under the canonical ``mask``."""
        m = self.canonical(self._check_masks(mask))[0]
        return [int(m[s.bits].sum()) for s in self.sites]

    def structure_report(self, mask: Any) -> dict[str, Any]:
        """What ``summary.json`` says about a structure (see ``finish_structure``)."""
        return {"btn_per_superblock": self.channels_per_superblock(mask),
                "btn_full": [b.btn for b in self.spec.blocks]}

    # -- forward ------------------------------------------------------------------------------
    def _block(self, block: nn.Module, x: torch.Tensor, m: torch.Tensor, lam: int
               ) -> torch.Tensor:
        bottleneck = isinstance(block.conv3, ConvBN)
        h = apply_group_mask(_conv_bn(block.conv1, x, lam), m, expanded=True)
        h = _conv_bn(block.conv2, h, lam)
        if bottleneck:
            h = _conv_bn(block.conv3, apply_group_mask(h, m, expanded=True), lam)
        sc = block.shortcut.pool(x)
        if isinstance(block.shortcut.proj, ConvBN):
            sc = _conv_bn(block.shortcut.proj, sc, lam)
        return block.act(h + sc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(lambda * N, num_classes)`` logits (``N`` rows with no
        structure set: the full network)."""
        if self._masks is None:
            return self.head(self.blocks(self.stem(x)))
        lam = self.num_structures
        st = self.stem
        # the stem conv is the same for every group: computed once, then one copy per group
        h = st.conv(x).repeat(lam, 1, 1, 1)
        h = st.pool(st.act(group_batch_norm(st.bn, h, lam)))
        for site, superblock in zip(self.sites, self.blocks, strict=True):
            m = self.site_mask(site)
            assert m is not None
            for block in superblock:
                h = self._block(block, h, m, lam)
        return self.head(h)

    # -- compaction ---------------------------------------------------------------------------
    def compact_spec(self, mask: Any) -> ResNetSpec:
        """The spec with ``btn_s`` = kept channels of superblock ``s`` (canonical structure)."""
        kept = self.channels_per_superblock(mask)
        blocks = [{**b.model_dump(), "btn": n} for b, n in zip(self.spec.blocks, kept,
                                                                   strict=True)]
        name = f"{self.spec.name or 'resnet'}-structured"
        return self.spec.replace(blocks=blocks, name=name)  # type: ignore[return-value]

    @torch.no_grad()
    def compact(self, mask: Any, scale: np.ndarray | None = None
                ) -> tuple[nn.Module, ResNetSpec]:
        """The narrower ResNet as ``(module, spec)``; its outputs equal this supernet's with
        structure ``mask`` (canonicalised first) and ``scale`` (``(d,)``, optional: folded into
        the input channels of conv2 and, bottleneck, conv3 -- where the mask acts)."""
        m = self.canonical(self._check_masks(mask))[0]
        spec = self.compact_spec(m)
        module = spec.build()
        sup = self.state_dict()
        new = {k: v.clone() for k, v in sup.items()}
        dev = next(self.parameters()).device
        for s, (site, blk) in enumerate(zip(self.sites, self.spec.blocks, strict=True)):
            keep = torch.as_tensor(np.flatnonzero(m[site.bits]), dtype=torch.long, device=dev)
            f = (torch.ones(len(keep), device=dev) if scale is None else torch.as_tensor(
                scale[site.bits], dtype=torch.float32, device=dev)[keep]).view(1, -1, 1, 1)
            for j in range(blk.L):
                p = f"blocks.{s}.{j}."
                new[p + "conv1.conv.weight"] = sup[p + "conv1.conv.weight"][keep].clone()
                bns = [p + "conv1.bn."]
                w2 = sup[p + "conv2.conv.weight"][:, keep] * f
                if blk.block == "bottleneck":
                    w2 = w2[keep]
                    bns.append(p + "conv2.bn.")
                    new[p + "conv3.conv.weight"] = (sup[p + "conv3.conv.weight"][:, keep]
                                                    * f).clone()
                new[p + "conv2.conv.weight"] = w2.clone()
                for bn in bns:
                    for part in ("weight", "bias", "running_mean", "running_var"):
                        new[bn + part] = sup[bn + part][keep].clone()
        module.load_state_dict(new, strict=True)
        return module.to(dev), spec


def run_resnet_structure(checkpoint: str | os.PathLike[str], data: ImageDataset | str, *,
                         out: str | Path, train: TrainConfig,
                         structure: StructureConfig | None = None,
                         data_dir: str | Path | None = None, resume: bool = False,
                         latency: bool = True, progress: bool = True) -> dict[str, Any]:
    """Shrink a trained ResNet: its supernet (:class:`MaskedResNet`, weights from
    ``checkpoint``) is fine-tuned jointly with the channel distribution (SNG / ASNG with the
    complexity penalty ``structure.penalty``), then ``M*`` is compacted to a smaller ResNetSpec.

    Args:
        checkpoint: a trained ResNet checkpoint (e.g. ``designed/checkpoint.pt`` of a run).
        data: the dataset (or its registry name) the checkpoint was trained on.
        out: the result folder (as :func:`~archopt.structure.run_structure`'s: ``config.json``,
            ``metrics.jsonl``, ``checkpoint.pt``, ``structure.json``, ``arch.json`` of the
            compact spec, ``model.pt``, ``summary.json``).
        train: the weights' options (fine-tuning: epochs, batch size, lr, ...).
        structure: the structure optimiser's options.
        data_dir, resume, latency, progress: as :func:`~archopt.structure.run_structure`.

    Returns: the summary (``btn_per_superblock``, ``weight_usage_rate``, ``params``, ``macs``,
        ``test_accuracy``, ``test_macro_f1``, ``latency_ms``, ...).
    Raises: CheckpointError, InvalidSpec (see :meth:`MaskedResNet.from_checkpoint`),
        ArchoptError (options, an occupied ``out``), TrainingDiverged.
    """
    return joint_run(lambda ds: MaskedResNet.from_checkpoint(checkpoint, ds), data, task=TASK,
                     out=out, train=train, structure=structure, data_dir=data_dir,
                     resume=resume, latency=latency, progress=progress,
                     config={"init_checkpoint": str(checkpoint)})
