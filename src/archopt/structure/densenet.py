"""Connection selection in a DenseNet: one structure bit per (source map -> consumer) connection.

In stage ``i`` with ``L`` layers the consumers are the layers ``0..L-1`` and the stage output
(the maps feeding the transition, or the classifier after the last stage); consumer ``l`` reads
sources ``0..l`` (0 = the stage input, ``s >= 1`` = layer ``s - 1``), so a stage has
``(L + 1)(L + 2) / 2`` bits -- 91 for L = 12, ``d = 273`` for DenseNet-40. The mask is applied
after the consumer's BN-ReLU (masking before it would let BatchNorm re-introduce non-zeros):
``conv(m * relu(bn(concat(sources))))`` with one bit per source's channel block.

``c_i`` is the number of weights attached to connection i: ``w_s * growth * k^2`` into a dense
layer (``w_s * 4 growth`` with a bottleneck), ``w_s * t_out`` into a transition,
``w_s * num_classes`` into the classifier (``w_s`` the source's channels).

A connection from a layer that has no live input, or into a layer whose output nobody reads,
cannot carry information; the supernet canonicalises every structure before use
(:meth:`MaskedDenseNet.canonical`, the same liveness rule as
:meth:`~archopt.spaces.DenseNetSpec.live_connections`), so that the masked network and the
compacted one (dead layers removed) compute the same function.

Source: Saito, Shirakawa et al., ICANN 2019, section 4.2 (after Shirakawa et al., AAAI 2018).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from archopt.errors import InvalidSpec
from archopt.spaces.densenet import DenseNetSpec
from archopt.structure.masking import Supernet, apply_group_mask, group_batch_norm

__all__ = ["MaskedDenseNet"]


class MaskedDenseNet(Supernet):
    """The DenseNet of ``spec`` with every connection, one bit per connection.

    Args:
        spec: a :class:`~archopt.spaces.DenseNetSpec`; its ``connections`` are ignored (the
            supernet is fully connected) and its transitions keep the full network's widths.
            Parameter names equal the full spec's built module (``stem``, ``stages``,
            ``transitions``, ``final_norm``, ``head``).
    """

    def __init__(self, spec: DenseNetSpec) -> None:
        super().__init__()
        dense = spec.replace(connections=None, transition_channels=None)
        lives = dense.live_connections()
        t_out = [lives[i + 1].widths[0] for i in range(len(spec.stages) - 1)]
        self.spec: DenseNetSpec = dense.replace(  # type: ignore[assignment]
            transition_channels=t_out)
        net = self.spec.build()
        self.stem = net.stem
        self.stages = net.stages
        self.transitions = net.transitions
        self.final_norm = net.final_norm
        self.relu = nn.ReLU()
        self.head = net.head
        self.widths = [live.widths for live in lives]  # per stage: channels of each source
        self._chan: list[list[str]] = []
        self._stage_sites: list[list[int]] = []
        for i, (st, widths) in enumerate(zip(self.spec.stages, self.widths, strict=True)):
            L = st.layers
            last = i == len(self.spec.stages) - 1
            names, site_idx = [], []
            for l in range(L + 1):
                w = np.asarray(widths[:l + 1], dtype=np.float64)
                if l < L:
                    per = st.bottleneck_width * st.growth if st.bottleneck else st.growth * st.k**2
                    name = f"stages.{i}.layers.{l}"
                elif not last:
                    per = t_out[i]
                    name = f"stages.{i}.output"
                else:
                    per = max(self.spec.num_classes, 0)
                    name = f"stages.{i}.output"
                site = self._add_site(name, l + 1, w * per)
                site_idx.append(len(self.sites) - 1)
                chan = np.repeat(np.arange(site.offset, site.offset + l + 1), widths[:l + 1])
                buf = f"_chan_{i}_{l}"
                self.register_buffer(buf, torch.as_tensor(chan, dtype=torch.long),
                                     persistent=False)
                names.append(buf)
            self._chan.append(names)
            self._stage_sites.append(site_idx)

    # -- structure ----------------------------------------------------------------------------
    def stage_bits(self, i: int) -> slice:
        """The bits of stage ``i`` (consumers in order, each with its sources in order)."""
        first = self.sites[self._stage_sites[i][0]]
        last = self.sites[self._stage_sites[i][-1]]
        return slice(first.offset, last.offset + last.size)

    def canonical(self, masks: np.ndarray) -> np.ndarray:
        """Turn off connections from layers without a live input and into layers whose output
        no live consumer reads (``(lambda, d)`` bool -> same shape). A stage whose output has
        no live source keeps no bit at all."""
        masks = np.asarray(masks, dtype=bool)
        out = np.zeros_like(masks)
        lam = masks.shape[0]
        for i, st in enumerate(self.spec.stages):
            L = st.layers
            sites = [self.sites[k] for k in self._stage_sites[i]]
            bits = [masks[:, s.bits] for s in sites]
            has = np.ones((lam, L + 1), dtype=bool)
            for l in range(L):
                has[:, l + 1] = (bits[l] & has[:, :l + 1]).any(axis=1)
            outb = bits[L] & has
            used = outb.copy()
            for l in reversed(range(L)):
                live = used[:, l + 1] & has[:, l + 1]
                b = bits[l] & has[:, :l + 1] & live[:, None]
                out[:, sites[l].bits] = b
                used[:, :l + 1] |= b
            out[:, sites[L].bits] = outb
        return out

    def _mask(self, i: int, l: int) -> torch.Tensor | None:
        if self._masks is None:
            return None
        return self._masks[:, getattr(self, self._chan[i][l])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(lambda * N, num_classes)`` logits."""
        lam = self.num_structures
        x = self.stem(x)
        if self._masks is not None:
            x = x.repeat(lam, 1, 1, 1)
        for i, (stage, st) in enumerate(zip(self.stages, self.spec.stages, strict=True)):
            feats = [x]
            for l in range(st.layers):
                layer = stage.layers[str(l)]
                h = torch.cat(feats, 1) if len(feats) > 1 else feats[0]
                h = self.relu(group_batch_norm(layer.norm1, h, lam))
                m = self._mask(i, l)
                if m is not None:
                    h = apply_group_mask(h, m, expanded=True)
                if st.bottleneck:
                    h = self.relu(group_batch_norm(layer.norm2, layer.conv1(h), lam))
                feats.append(layer.conv2(h))
            h = torch.cat(feats, 1)
            if i < len(self.transitions):
                t = self.transitions[i]
                h = self.relu(group_batch_norm(t.norm, h, lam))
            else:
                h = self.relu(group_batch_norm(self.final_norm, h, lam))
            m = self._mask(i, st.layers)
            if m is not None:
                h = apply_group_mask(h, m, expanded=True)
            if i < len(self.transitions):
                x = self.transitions[i].pool(self.transitions[i].conv(h))
            else:
                return self.head(h)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reporting / compaction ---------------------------------------------------------------
    def connections(self, mask: Any) -> list[list[list[bool]]]:
        """The canonical structure as the spec's nested ``connections`` lists."""
        m = self.canonical(self._check_masks(mask))[0]
        return [[[bool(b) for b in m[self.sites[k].bits]] for k in site_idx]
                for site_idx in self._stage_sites]

    def connections_per_block(self, mask: Any, *, canonical: bool = True) -> list[int]:
        """Live (or, with ``canonical=False``, selected) connections in each stage."""
        m = self._check_masks(mask)
        if canonical:
            m = self.canonical(m)
        return [int(m[0, self.stage_bits(i)].sum()) for i in range(len(self.spec.stages))]

    def compact_spec(self, mask: Any) -> DenseNetSpec:
        """The pruned network's spec (``connections`` set, transitions at full width).

        Raises: InvalidSpec when the structure leaves a stage output with no live source.
        """
        conns = self.connections(mask)
        for i, stage in enumerate(conns):
            if not any(stage[-1]):
                raise InvalidSpec(
                    f"the structure leaves stage {i} of the DenseNet disconnected (no live map "
                    "feeds its output), so no network can be built from it; lower the penalty "
                    "(eps0) or train longer")
        return self.spec.replace(connections=conns)  # type: ignore[return-value]

    @torch.no_grad()
    def compact(self, mask: Any, scale: np.ndarray | None = None
                ) -> tuple[nn.Module, DenseNetSpec]:
        """The pruned DenseNet as ``(module, spec)``: dead layers removed, the input channels
        of every consumer's BatchNorm and first conv (or classifier) sliced to its live sources;
        with ``scale`` (``(d,)``), the conv (classifier) columns that read connection ``i``'s
        channels are multiplied by ``scale_i``. Its outputs equal this supernet's with structure
        ``mask`` (canonicalised) and ``scale``."""
        spec = self.compact_spec(mask)
        module = spec.build()
        lives = spec.live_connections()
        sup = self.state_dict()
        target = module.state_dict()
        new = {k: sup[k].clone() for k in target if k in sup and sup[k].shape == target[k].shape}
        last = len(self.spec.stages) - 1
        for i, (st, live) in enumerate(zip(self.spec.stages, lives, strict=True)):
            offs = np.concatenate([[0], np.cumsum(self.widths[i])])
            consumers: list[tuple[int, list[int]]] = [
                (l, src) for l, src in enumerate(live.layer_sources) if src is not None]
            consumers.append((st.layers, list(live.output_sources)))
            for l, src in consumers:
                ch = torch.as_tensor(np.concatenate(
                    [np.arange(offs[s], offs[s + 1]) for s in src]), dtype=torch.long,
                    device=sup[next(iter(sup))].device)
                if l < st.layers:
                    p = f"stages.{i}.layers.{l}."
                    bn, conv = p + "norm1", p + ("conv1" if st.bottleneck else "conv2")
                elif i < last:
                    bn, conv = f"transitions.{i}.norm", f"transitions.{i}.conv"
                else:
                    bn, conv = "final_norm", "head.fc"
                for part in ("weight", "bias", "running_mean", "running_var"):
                    new[f"{bn}.{part}"] = sup[f"{bn}.{part}"][ch].clone()
                if f"{conv}.weight" in target:
                    w = sup[f"{conv}.weight"][:, ch]
                    if scale is not None:
                        bits = getattr(self, self._chan[i][l])[ch].cpu().numpy()
                        f = torch.as_tensor(scale[bits], dtype=w.dtype, device=w.device)
                        w = w * f.view(1, -1, *([1] * (w.dim() - 2)))
                    new[f"{conv}.weight"] = w.clone()
        module.load_state_dict(new, strict=True)
        return module.to(next(self.parameters()).device), spec
