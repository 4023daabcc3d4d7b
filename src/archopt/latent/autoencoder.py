"""The multi-scale autoencoder over MLPs (SWAT-NN spec section 2; arXiv 2410.08339, section 3.2).

Architecture (``C = channels = (32, 64, 128)`` in the paper):

- one CNN *encoder per depth* (per array width ``W_L``; only the one matching an input is used):
  3x3 conv ``1 -> C1`` + LeakyReLU, residual blocks ``C1 -> C2`` (stride 2), ``C2 -> C3``
  (stride 2), ``C3 -> C3`` (7 conv layers in all), flatten. A ``7 x W`` input becomes
  ``C3 x 2 x ceil(ceil(W/2)/2)``; with the paper's sizes the four feature sizes sum to 6144;
- the features of all widths are concatenated (zeros where an encoder was not used) and a shared
  MLP ``6144 -> 512 -> 256 -> 128`` gives the latent point ``z`` (``hidden = (512, 256)``,
  ``latent_dim = 128``);
- a shared MLP ``z -> 256 -> 512 -> 6144`` whose output is split per width; one *decoder per
  depth* takes its part (reshaped to ``C3 x 2 x w``): residual block, transposed conv to
  ``C2``, residual block, transposed conv to ``C1``, 3x3 conv, then an MLP head (one hidden layer
  of ``head_hidden`` units) to the ``7 x W_L`` array;
- the head's mask columns go through a sigmoid and are thresholded at 0.5; the weights of absent
  units and the padding are zeroed (:func:`archopt.latent.encoding.structure_mask`), so every
  decoded array is a clean MLP encoding.

Every MLP is decoded by all decoders; the loss is *functional*: all decoded MLPs and the original
run on the same fixed inputs (:func:`input_grid`), and per original the minimum over decoders of
the output error is taken, averaged over the batch ("min-loss", :func:`min_decoder_loss`). The
per-decoder error is ``AutoencoderConfig.loss`` (:func:`decoder_losses`):

- ``"mse"``: the output MSE, as in the spec and the authors' code;
- ``"relative"``: the *percentage error* that the validation MdPE takes the median of,
  ``mean_p |y_hat_p - y_p| / mean_p |y_p|`` (:func:`archopt.latent.training.percentage_errors`,
  here as a fraction), i.e. training minimises the very per-MLP error the spec validates with.

Why ``"relative"`` for leaky-ReLU and linear (the presets use it there; ``"mse"`` stays the
default of the class, so checkpoints written before the field existed load and resume as they
were trained). Those two families are positively homogeneous: an MLP's output is a sum over
paths of products of ``L + 1`` weights ``U(-10, 10)``, so output scales spread over several
orders of magnitude (on the 10^3 grid, per-MLP mean ``|y|`` from ~0.1 to ~10^3 in one batch)
and the batch-mean MSE is the MSE of the two or three largest MLPs. The cheapest way to lower it
is to predict ~0 for everything, and for a homogeneous MLP ~0 is a trap: the gradient with
respect to any layer is a product of the others' weights and vanishes with them. Observed (the
``small`` preset, leaky-ReLU, 2000 steps at lr 1e-4): one decoder had shrunk to mean decoded
``|w|`` 0.07 and was the best decoder of 87 % of the validation MLPs, the three others had
grown to ``|w|`` 3-110 with outputs of 10^6-10^7 (so they were never the best, got no gradient
and stayed there), masks were not collapsed (mean 0.54-0.71), and the MdPE was exactly 100 %
(the decoded MLPs output ~0) at steps 500, 1000 and 2000 with an unchanged validation loss. The
relative error weighs every MLP alike whatever its scale and never rewards predicting 0 (it
scores exactly 1 there). Sigmoid outputs are bounded (``|y| <= sum |v|``), so its MSE is not
dominated this way; it keeps the spec's MSE.

Measured limit (CPU, one thread, lr 1e-4): the relative error alone does *not* make the
leaky-ReLU autoencoder learn quickly. ``tiny``, 600 steps: MSE gives MdPE 100.0 % at every
validation, relative 99.4-100 % (its loss 0.997 -> 0.97); ``small``, 300 steps, relative:
99.3-99.9 % (loss 0.999 -> 0.95). The remaining obstacle is the zero-function saddle above: a
freshly initialised head decodes ``|w| ~ 0.1`` where the family has ``|w| ~ 5``, so a decoded
leaky-ReLU MLP outputs ~1e-3 of its target and its weight gradients are products of such
weights (``weight_scale`` 5-10 did not change this in 600 ``tiny`` steps). The saddle can be
left: one fixed batch of 32 leaky-ReLU MLPs is fitted (relative loss 0.999 -> 0.52 in 400
``tiny`` steps at lr 1e-3; sigmoid 0.95 -> 0.29), so what stays slow is generalising over fresh
random MLPs. Open.

The CPU preset (:meth:`AutoencoderConfig.cpu`, the default of ``archopt latent train`` on a CPU
and the preset of the shipped autoencoders; a departure from the paper, whose CNN preset
:meth:`AutoencoderConfig.paper` is kept for a GPU). The paper's CNNs run ~1 step per CPU-second
and had learned nothing useful after thousands of steps (sigmoid MdPE worse than each MLP's own
constant mean, leaky-ReLU at 100 %). What the preset changes, each found to help in CPU
experiments (``benchmarks/latent_preset.py`` compares variants):

- ``arch="mlp"``: per-depth encoder ``flatten(7 x W_L) -> mlp_width`` (384) + LeakyReLU, shared
  ``mlp_width -> 256 -> 128`` (no 512 layer), and back ``128 -> 256 -> mlp_width``; per-depth
  decoder ``mlp_width -> 256 -> 7 x W_L``. About 1.0 M parameters; steps per CPU-second
  in ``benchmarks/results/latent_throughput.json`` (``benchmarks/latent.py``);
- ``input_scale=10``: the encoder reads the weights divided by 10 (O(1) inputs);
  ``weight_scale=10``: decoded weights are 10 x the head's output (a fresh head reaches the
  family's +-10 weights);
- ``recon_weight``: a weight-reconstruction term beside the functional min-loss (each original
  decoded by its own depth's decoder: MSE on the weights in units of ``weight_range`` + BCE on
  the masks; weight 10 for sigmoid with the MSE, 1 for leaky-ReLU / linear with the relative
  error), :func:`reconstruction_loss`;
- no latent normalisation (``latent_norm=False``; the option stays for experiments);
- schedule (:meth:`archopt.latent.training.TrainConfig.cpu`): Adam 1e-3, 200 warm-up steps,
  cosine to 0 over ``CPU_STEPS`` batches of 32.

Ours, for fine-tuning (``contrastive_weight``, 0 in every preset): an InfoNCE term that pulls
each training MLP's latent point towards an exactly equivalent MLP (:func:`contrastive_loss`),
so that the encoder places equal functions together whatever their arrays
(``benchmarks/latent_geometry.py`` measures whether it does).

Assumptions beyond the spec (named here and in the report):

- the thresholded masks pass gradients straight through (``hard + soft - soft.detach()``): the
  spec thresholds at 0.5, which alone would give the mask head no gradient;
- LeakyReLU slope 0.01 inside the autoencoder; no normalisation layers (BatchNorm statistics
  would differ between training and the single-point decoding of the search);
- the decoder head has one hidden layer (``head_hidden = 256``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from archopt.errors import InvalidSpec
from archopt.latent.encoding import ArrayLayout, array_forward, structure_mask
from archopt.latent.equivalence import equivalent_arrays
from archopt.runtime.settings import Settings

__all__ = [
    "LOSSES",
    "AutoencoderConfig",
    "MultiScaleAutoencoder",
    "contrastive_loss",
    "decoder_errors",
    "decoder_losses",
    "input_grid",
    "min_decoder_loss",
    "reconstruction_loss",
    "training_loss",
]

_SLOPE = 0.01
#: Per-decoder functional errors of the min-loss (see the module docstring).
LOSSES = ("mse", "relative")
#: Activations whose MLP family is positively homogeneous: the presets train them on the relative
#: error (see the module docstring).
_HOMOGENEOUS = ("leaky_relu", "linear")


class AutoencoderConfig(Settings):
    """Everything that fixes an autoencoder's architecture and the MLP family it covers.

    Presets: :meth:`paper` (the paper's sizes, for a GPU), :meth:`small` (scaled down for a CPU:
    channels (16, 32, 64), hidden (256, 256), head 128; latent stays 128-d) and :meth:`tiny`
    (smoke tests).
    """

    what = "autoencoder config"

    activation: Literal["sigmoid", "leaky_relu", "linear"] = "sigmoid"
    negative_slope: float = Field(0.1, ge=0)
    n_in: int = Field(3, ge=1)
    max_width: int = Field(7, ge=1)
    max_depth: int = Field(4, ge=1, le=8)
    channels: tuple[int, int, int] = (32, 64, 128)
    hidden: tuple[int, ...] = (512, 256)
    latent_dim: int = Field(128, ge=1)
    head_hidden: int = Field(256, ge=1)
    # Decoded weights = weight_scale x the head's output (1 = the spec; larger values let a
    # freshly initialised head reach the +-10 weights of the family sooner).
    weight_scale: float = Field(1.0, gt=0)
    # The family of training MLPs (generator settings).
    widths: tuple[int, int] = (3, 6)
    weight_range: float = Field(10.0, gt=0)
    sparsities: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9)
    # The fixed inputs of the functional loss: a grid of `grid_points` per input on [-1, 1].
    grid_points: int = Field(10, ge=2)
    # The per-decoder error of the min-loss: "mse" (the spec) or "relative" (the per-MLP
    # percentage error of the validation MdPE). The presets pick "relative" for leaky_relu and
    # linear; "mse" is the default so that configs written before this field keep their meaning.
    loss: Literal["mse", "relative"] = "mse"
    # --- CPU-preset departures from the paper (defaults = the paper's design) ---------------
    # "cnn": the paper's conv encoders/decoders; "mlp": per-depth linear encoders and decoders
    # around the same shared latent MLPs (see the module docstring, "The CPU preset").
    arch: Literal["cnn", "mlp"] = "cnn"
    # MLP arch: width of the per-depth encoder output and of the shared expand output.
    mlp_width: int = Field(512, ge=1)
    # The encoder reads weights / input_scale (mask columns unscaled): O(1) inputs.
    input_scale: float = Field(1.0, gt=0)
    # Weight of the reconstruction term: each original's array decoded by its own depth's decoder,
    # MSE on weights in units of weight_range + BCE on the mask columns (0 = the paper).
    recon_weight: float = Field(0.0, ge=0)
    # Latent points are layer-normalised (zero mean, unit variance over the latent_dim entries)
    # before decoding, and encode() returns normalised points.
    latent_norm: bool = False
    # Gaussian noise (std, in latent units) added to z before decoding during training.
    latent_noise: float = Field(0.0, ge=0)
    # Ours (not in the paper): weight of the contrastive term on equivalent pairs
    # (:func:`contrastive_loss`; 0 = off) and its temperature.
    contrastive_weight: float = Field(0.0, ge=0)
    contrastive_temperature: float = Field(0.1, gt=0)

    @model_validator(mode="after")
    def _check(self) -> AutoencoderConfig:
        ArrayLayout(self.n_in, self.max_width, self.max_depth)
        if not 1 <= self.widths[0] <= self.widths[1] <= self.max_width:
            raise ValueError(f"widths {self.widths} must lie in 1..max_width={self.max_width}")
        if any(not 0 <= s < 1 for s in self.sparsities) or not self.sparsities:
            raise ValueError(f"sparsities must be in [0, 1), got {self.sparsities}")
        if any(c < 1 for c in self.channels) or any(h < 1 for h in self.hidden):
            raise ValueError("channels and hidden sizes must be >= 1")
        return self

    @property
    def layout(self) -> ArrayLayout:
        return ArrayLayout(self.n_in, self.max_width, self.max_depth)

    @staticmethod
    def default_loss(activation: str) -> str:
        """The presets' loss: ``"relative"`` for leaky_relu / linear, ``"mse"`` for sigmoid."""
        return "relative" if activation in _HOMOGENEOUS else "mse"

    @classmethod
    def paper(cls, activation: str = "sigmoid", **changes: object) -> AutoencoderConfig:
        """The paper's sizes (channels 32/64/128, FC 6144-512-256-128)."""
        return cls(activation=activation, **{"loss": cls.default_loss(activation), **changes})

    @classmethod
    def small(cls, activation: str = "sigmoid", **changes: object) -> AutoencoderConfig:
        """Scaled down for CPU training (about 10x fewer multiply-adds than :meth:`paper`)."""
        base: dict[str, object] = dict(channels=(16, 32, 64), hidden=(256, 256), head_hidden=128,
                                       loss=cls.default_loss(activation))
        return cls(activation=activation, **{**base, **changes})

    @classmethod
    def cpu(cls, activation: str = "sigmoid", **changes: object) -> AutoencoderConfig:
        """The CPU preset (a departure from the paper, see the module docstring): MLP encoders
        and decoders, inputs / 10, decoded weights x 10, no latent normalisation, and the
        weight-reconstruction term (weight 10 beside the MSE for sigmoid, 1 beside the relative
        error for leaky_relu / linear)."""
        loss = cls.default_loss(activation)
        base: dict[str, object] = dict(
            arch="mlp", mlp_width=384, hidden=(256,), latent_dim=128, head_hidden=256,
            input_scale=10.0, weight_scale=10.0, latent_norm=False, loss=loss,
            recon_weight=10.0 if loss == "mse" else 1.0)
        return cls(activation=activation, **{**base, **changes})

    @classmethod
    def tiny(cls, activation: str = "sigmoid", **changes: object) -> AutoencoderConfig:
        """A few thousand parameters: for smoke tests and examples, not for real searches."""
        base: dict[str, object] = dict(channels=(4, 8, 8), hidden=(32,), latent_dim=16,
                                       head_hidden=16, loss=cls.default_loss(activation))
        return cls(activation=activation, **{**base, **changes})


#: Named configurations for ``archopt latent train --preset``.
PRESETS = {"cpu": AutoencoderConfig.cpu, "paper": AutoencoderConfig.paper,
           "small": AutoencoderConfig.small, "tiny": AutoencoderConfig.tiny}


def input_grid(n_in: int, points: int = 10, *, low: float = -1.0, high: float = 1.0,
               max_points: int = 4096, device: torch.device | str | None = None) -> torch.Tensor:
    """The fixed inputs of the functional loss: a ``points^n_in`` grid on ``[low, high]^n_in``.

    Paper: a 10 x 10 x 10 grid on [-1, 1]^3. When ``points^n_in > max_points`` (many inputs) the
    grid is replaced by ``max_points`` fixed quasi-random points (a scrambled Sobol sequence with
    seed 0), so the loss stays affordable.

    Returns: ``(P, n_in)`` float32.
    """
    if points ** n_in <= max_points:
        axis = torch.linspace(low, high, points)
        g = torch.cartesian_prod(*([axis] * n_in)) if n_in > 1 else axis.unsqueeze(1)
    else:
        sobol = torch.quasirandom.SobolEngine(n_in, scramble=True, seed=0)
        g = low + (high - low) * sobol.draw(max_points)
    return g.to(device=device, dtype=torch.float32)


def _down(n: int) -> int:
    """Side after a 3x3 stride-2 conv with padding 1."""
    return (n - 1) // 2 + 1


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.act = nn.LeakyReLU(_SLOPE)
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out
                     else nn.Conv2d(c_in, c_out, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))) + self.skip(x))


class _Encoder(nn.Module):
    def __init__(self, channels: tuple[int, int, int]) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.net = nn.Sequential(nn.Conv2d(1, c1, 3, 1, 1), nn.LeakyReLU(_SLOPE),
                                 _ResBlock(c1, c2, 2), _ResBlock(c2, c3, 2), _ResBlock(c3, c3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1)).flatten(1)


class _Decoder(nn.Module):
    def __init__(self, channels: tuple[int, int, int], rows: int, width: int,
                 head_hidden: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        h1, w1 = _down(rows), _down(width)
        h2, w2 = _down(h1), _down(w1)
        self.shape = (c3, h2, w2)
        self.rows, self.width = rows, width

        def up(c_in: int, c_out: int, src: tuple[int, int], dst: tuple[int, int]) -> nn.Module:
            pad = (dst[0] - (2 * src[0] - 1), dst[1] - (2 * src[1] - 1))
            return nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=pad)

        self.net = nn.Sequential(
            _ResBlock(c3, c3), up(c3, c2, (h2, w2), (h1, w1)), nn.LeakyReLU(_SLOPE),
            _ResBlock(c2, c2), up(c2, c1, (h1, w1), (rows, width)), nn.LeakyReLU(_SLOPE),
            nn.Conv2d(c1, c1, 3, 1, 1), nn.LeakyReLU(_SLOPE), nn.Flatten(),
            nn.Linear(c1 * rows * width, head_hidden), nn.LeakyReLU(_SLOPE),
            nn.Linear(head_hidden, rows * width))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        out = self.net(feats.view(-1, *self.shape))
        return out.view(-1, self.rows, self.width)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(_SLOPE))
    return nn.Sequential(*layers)


class _FlatEncoder(nn.Module):
    """MLP arch: flatten the ``H x W`` array -> ``width`` (one linear layer + LeakyReLU)."""

    def __init__(self, rows: int, width: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(rows * width, out), nn.LeakyReLU(_SLOPE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _FlatDecoder(nn.Module):
    """MLP arch: ``width -> head_hidden -> H x W`` (the decoder of one depth)."""

    def __init__(self, width: int, head_hidden: int, rows: int, cols: int) -> None:
        super().__init__()
        self.rows, self.width = rows, cols
        self.net = nn.Sequential(nn.Linear(width, head_hidden), nn.LeakyReLU(_SLOPE),
                                 nn.Linear(head_hidden, rows * cols))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats).view(-1, self.rows, self.width)


class MultiScaleAutoencoder(nn.Module):
    """Encoders per width, a shared latent embedding, decoders per depth (see module docstring).

    Args:
        config: the :class:`AutoencoderConfig` (``arch`` "cnn": the paper's conv stacks; "mlp":
            the CPU preset's linear per-depth encoders and decoders).

    Shapes: :meth:`encode` maps ``{depth: (B_L, H, W_L)}`` to ``(sum B_L, latent_dim)`` (depths in
    increasing order); :meth:`decode` maps ``(B, latent_dim)`` to ``(B, H, W_L)`` clean arrays for
    one depth; :meth:`decode_all` to all depths at once (the shared expand MLP runs once).
    """

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        self.layout = config.layout
        H = self.layout.rows
        depths = list(self.layout.depths)
        if config.arch == "cnn":
            c3 = config.channels[2]
            self.feature_sizes = [c3 * _down(_down(H)) * _down(_down(self.layout.width(L)))
                                  for L in depths]
            total = sum(self.feature_sizes)
            self.offsets = [sum(self.feature_sizes[:i]) for i in range(len(self.feature_sizes))]
            self.encoders = nn.ModuleList(_Encoder(config.channels) for _ in depths)
            self.decoders = nn.ModuleList(
                _Decoder(config.channels, H, self.layout.width(L), config.head_hidden)
                for L in depths)
        else:
            total = config.mlp_width
            self.feature_sizes = [total] * len(depths)
            self.offsets = [0] * len(depths)
            self.encoders = nn.ModuleList(_FlatEncoder(H, self.layout.width(L), total)
                                          for L in depths)
            self.decoders = nn.ModuleList(
                _FlatDecoder(total, config.head_hidden, H, self.layout.width(L)) for L in depths)
        self.embed = _mlp([total, *config.hidden, config.latent_dim])
        self.expand = nn.Sequential(_mlp([config.latent_dim, *reversed(config.hidden), total]),
                                    nn.LeakyReLU(_SLOPE))

    @property
    def depths(self) -> list[int]:
        return list(self.layout.depths)

    def _scale_input(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        s = self.config.input_scale
        if s == 1.0:
            return x
        wc = self.layout.weight_cols(depth)
        return torch.cat([x[..., :wc] / s, x[..., wc:]], dim=-1)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """The latent point the decoders read: ``z`` itself, or with ``latent_norm`` its layer
        normalisation (zero mean, unit variance over the ``latent_dim`` entries)."""
        if not self.config.latent_norm:
            return z
        return nn.functional.layer_norm(z, z.shape[-1:])

    def encode(self, arrays: dict[int, torch.Tensor]) -> torch.Tensor:
        """Embed MLP arrays grouped by depth; returns ``(B, latent_dim)`` in depth order."""
        parts = []
        for L in sorted(arrays):
            x = arrays[L]
            if x.dim() != 3 or tuple(x.shape[1:]) != (self.layout.rows, self.layout.width(L)):
                raise InvalidSpec(f"depth {L}: expected arrays (B, {self.layout.rows}, "
                                  f"{self.layout.width(L)}), got {tuple(x.shape)}")
            f = self.encoders[L - 1](self._scale_input(x, L))
            if self.config.arch == "cnn":  # the paper: features of all widths concatenated
                feats = x.new_zeros(x.shape[0], sum(self.feature_sizes))
                i = self.offsets[L - 1]
                feats[:, i:i + f.shape[1]] = f
                f = feats
            parts.append(f)
        return self.normalize(self.embed(torch.cat(parts)))

    def _head(self, h: torch.Tensor, depth: int) -> torch.Tensor:
        i = self.offsets[depth - 1]
        return self.decoders[depth - 1](h[:, i:i + self.feature_sizes[depth - 1]])

    def decode_raw(self, z: torch.Tensor, depth: int) -> torch.Tensor:
        """The decoder head's raw ``(B, H, W_L)`` output (before masks and ``weight_scale``)."""
        depth = self.layout.check_depth(depth)
        return self._head(self.expand(self.normalize(z)), depth)

    def _clean(self, raw: torch.Tensor, depth: int) -> torch.Tensor:
        wc = self.layout.weight_cols(depth)
        soft = torch.sigmoid(raw[..., wc:])
        masks = (soft > 0.5).to(soft.dtype) + (soft - soft.detach())  # exactly 0/1 forward
        weights = raw[..., :wc] * self.config.weight_scale * structure_mask(masks, self.layout)
        return torch.cat([weights, masks], dim=-1)

    def decode(self, z: torch.Tensor, depth: int) -> torch.Tensor:
        """Decode latent points to clean MLP arrays with ``depth`` hidden layers.

        Mask columns: ``sigmoid > 0.5`` (straight-through gradient); weights of absent units and
        padding are zero. Returns ``(B, H, W_L)``.
        """
        return self._clean(self.decode_raw(z, depth), depth)

    def decode_all(self, z: torch.Tensor, *, raw: bool = False) -> dict[int, torch.Tensor]:
        """Decode ``(B, latent_dim)`` with every decoder; the expand MLP runs once.

        Returns: ``{depth: (B, H, W_depth)}`` clean arrays (``raw=True``: the heads' raw outputs).
        """
        h = self.expand(self.normalize(z))
        heads = {L: self._head(h, L) for L in self.depths}
        return heads if raw else {L: self._clean(r, L) for L, r in heads.items()}

    def forward(self, arrays: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Encode, then decode with every decoder: ``{depth: (B, H, W_depth)}``."""
        return self.decode_all(self.encode(arrays))


def decoder_errors(model: MultiScaleAutoencoder, arrays: dict[int, torch.Tensor],
                   grid: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
    """Functional errors of every decoder on a batch.

    Returns:
        ``mse``: ``(B, D)`` output MSE on ``grid`` of decoder ``d`` (depth ``d + 1``) vs the
        original; ``y``: ``(B, P)`` the originals' outputs; ``preds``: ``{depth: (B, P)}``.
        Rows are in increasing depth order of ``arrays``.
    """
    out = _batch_forward(model, arrays, grid)
    return out[0], out[1], out[2]


def _batch_forward(model: MultiScaleAutoencoder, arrays: dict[int, torch.Tensor],
                   grid: torch.Tensor, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor],
                              dict[int, torch.Tensor], torch.Tensor]:
    """``(mse, y, preds, raw, z)``: :func:`decoder_errors` plus the heads' raw outputs and the
    latent points; with a ``generator`` (training) ``latent_noise`` is added to ``z`` before
    decoding (``z`` is returned without it)."""
    cfg = model.config
    lay = model.layout
    y = torch.cat([array_forward(arrays[L], grid, lay, cfg.activation, cfg.negative_slope)
                   for L in sorted(arrays)])
    z0 = model.encode(arrays)
    z = z0
    if generator is not None and cfg.latent_noise > 0:
        z = z + cfg.latent_noise * torch.randn(z.shape, generator=generator, device=z.device,
                                               dtype=z.dtype)
    raw = model.decode_all(z, raw=True)
    preds = {L: array_forward(model._clean(r, L), grid, lay, cfg.activation,
                              cfg.negative_slope) for L, r in raw.items()}
    mse = torch.stack([((preds[L] - y) ** 2).mean(1) for L in model.depths], dim=1)
    return mse, y, preds, raw, z0


def contrastive_loss(model: MultiScaleAutoencoder, arrays: dict[int, torch.Tensor],
                     z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Ours (not in the paper): an InfoNCE term that pulls every MLP's latent point towards an
    exactly equivalent MLP (:func:`archopt.latent.equivalence.equivalent_arrays`: a split unit,
    permuted units, a dead unit, or for leaky-ReLU / linear an identity layer) and away from the
    other MLPs' partners in the batch.

    With ``d_ij = ||z_i - z'_j||^2`` (``z'``: the partners' encodings) and ``m`` the batch mean of
    ``d`` (no gradient, so the term is scale-free): ``cross_entropy(-d / (tau m), i)`` averaged
    over the batch, ``tau = config.contrastive_temperature``.

    Args:
        arrays: the batch ``{depth: (B_L, H, W_L)}``; ``z``: its ``(B, latent_dim)`` encodings.
    """
    cfg = model.config
    if generator.device.type != "cpu":  # the constructions draw on the CPU
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        generator = torch.Generator().manual_seed(seed)
    partners, order = equivalent_arrays(arrays, model.layout, activation=cfg.activation,
                                        negative_slope=cfg.negative_slope, generator=generator,
                                        weight_range=cfg.weight_range)
    zp = model.encode(partners)[order.to(z.device)]
    d = torch.cdist(z, zp) ** 2
    logits = -d / (cfg.contrastive_temperature * d.detach().mean().clamp_min(1e-12))
    return nn.functional.cross_entropy(logits, torch.arange(len(z), device=z.device))


def reconstruction_loss(model: MultiScaleAutoencoder, arrays: dict[int, torch.Tensor],
                        raw: dict[int, torch.Tensor]) -> torch.Tensor:
    """The CPU preset's auxiliary term: each original decoded by its own depth's decoder.

    ``mean((weight_scale * raw_w - w)^2) / weight_range^2`` over the weight columns (weights in
    units of the family's ``weight_range``) plus the binary cross-entropy of the mask columns'
    logits against the original's unit masks; averaged over the batch (rows in depth order, as
    :meth:`MultiScaleAutoencoder.encode`).
    """
    cfg = model.config
    lay = model.layout
    start, terms, n = 0, [], 0
    for L in sorted(arrays):
        a = arrays[L]
        r = raw[L][start:start + a.shape[0]]
        start += a.shape[0]
        wc = lay.weight_cols(L)
        w_err = ((r[..., :wc] * cfg.weight_scale - a[..., :wc]) / cfg.weight_range) ** 2
        bce = nn.functional.binary_cross_entropy_with_logits(r[..., wc:], a[..., wc:],
                                                             reduction="none")
        terms.append(w_err.flatten(1).mean(1).sum() + bce.flatten(1).mean(1).sum())
        n += a.shape[0]
    return torch.stack(terms).sum() / max(n, 1)


def training_loss(model: MultiScaleAutoencoder, arrays: dict[int, torch.Tensor],
                  grid: torch.Tensor, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """The autoencoder's training objective on one batch.

    ``min-loss`` (mean over the batch of the minimum over decoders of ``config.loss``) plus, when
    ``config.recon_weight > 0``, ``recon_weight * reconstruction_loss``, plus, when
    ``config.contrastive_weight > 0``, ``contrastive_weight * contrastive_loss`` (its partners
    drawn from ``generator``; a seed-0 generator when None).

    Returns: ``(loss, parts)`` with ``parts = {"functional", "recon", "contrastive"}`` as floats.
    """
    mse, y, preds, raw, z = _batch_forward(model, arrays, grid, generator)
    functional = decoder_losses(mse, y, preds, model.config.loss).min(1).values.mean()
    loss = functional
    parts = {"functional": float(functional.detach())}
    if model.config.recon_weight > 0:
        recon = reconstruction_loss(model, arrays, raw)
        loss = loss + model.config.recon_weight * recon
        parts["recon"] = float(recon.detach())
    if model.config.contrastive_weight > 0:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        con = contrastive_loss(model, arrays, z, g)
        loss = loss + model.config.contrastive_weight * con
        parts["contrastive"] = float(con.detach())
    return loss, parts


def decoder_losses(mse: torch.Tensor, y: torch.Tensor, preds: dict[int, torch.Tensor],
                   loss: str = "mse") -> torch.Tensor:
    """The per-decoder errors ``(B, D)`` that the min-loss minimises over decoders.

    Args:
        mse, y, preds: as returned by :func:`decoder_errors`.
        loss: ``"mse"`` (returns ``mse``) or ``"relative"``: ``mean_p |y_hat - y| / mean_p |y|``
            per original and decoder (an original whose outputs are all 0 is divided by 1e-12).

    Raises: InvalidSpec for another ``loss``.
    """
    if loss == "mse":
        return mse
    if loss == "relative":
        err = torch.stack([(preds[L] - y).abs().mean(1) for L in sorted(preds)], dim=1)
        return err / y.abs().mean(1, keepdim=True).clamp_min(1e-12)
    raise InvalidSpec(f"unknown autoencoder loss {loss!r} (use one of: {', '.join(LOSSES)})")


def min_decoder_loss(model: MultiScaleAutoencoder, arrays: dict[int, torch.Tensor],
                     grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The min-loss: mean over the batch of the minimum over decoders of the per-decoder error
    (``model.config.loss``: output MSE or relative error, :func:`decoder_losses`).

    Returns: ``(loss, best)``: the scalar loss and ``(B,)`` the index of the best decoder
    (depth - 1) for each original.
    """
    mse, y, preds = decoder_errors(model, arrays, grid)
    best_err, best = decoder_losses(mse, y, preds, model.config.loss).min(dim=1)
    return best_err.mean(), best
