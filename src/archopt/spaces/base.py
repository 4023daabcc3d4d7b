"""The contract every architecture family keeps.

A *spec* is data: a frozen, validated pydantic model with a ``space`` tag and a JSON round trip.
``spec.build()`` makes the ``torch.nn.Module``; ``spec.cost_table(resolution)`` lists every
weight layer with its exact MACs and parameter count, from which ``macs()``, ``params()`` and the
per-stage table follow. The analytic counts equal what ``torch.utils.flop_counter.FlopCounterMode``
(MACs = FLOPs / 2 for conv and linear layers) and ``sum(p.numel())`` report on the built module;
the tests hold every family to that.

Conventions (all families):
- MACs count convolutions and linear layers (the multiply-accumulates of their weights, biases
  excluded), as ``FlopCounterMode`` does; BN, activations, pooling and additions are free.
- Params count every trainable tensor: conv / linear weights and biases, BN affine (2 per channel).
  BN running statistics are buffers, not parameters.
- ``num_classes = 0`` means a headless backbone (timm's convention): the module returns the
  globally pooled features and no classifier is counted.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from archopt.errors import InvalidSpec
from archopt.runtime.settings import format_validation_error

__all__ = [
    "ArchSpec",
    "BlockGroup",
    "ConvSpec",
    "LayerCost",
    "OddKernel",
    "StageCost",
    "Stem",
    "conv_out",
    "format_validation_error",
]


def conv_out(size: int, kernel: int, stride: int, padding: int | None = None) -> int:
    """Output side length of a convolution / pooling window (PyTorch's floor rule).

    ``padding`` defaults to ``kernel // 2`` ("same" for stride 1), which gives ``ceil(size/stride)``
    for odd kernels.
    """
    if padding is None:
        padding = kernel // 2
    return (size + 2 * padding - kernel) // stride + 1


class LayerCost(NamedTuple):
    """One weight layer of a spec, as the cost model sees it.

    Attributes:
        name: dotted path of the layer in the built module (e.g. ``"blocks.2.0.conv2"``).
        kind: ``"conv"``, ``"dwconv"`` (depthwise), ``"linear"`` or ``"se"`` (squeeze-excite conv).
        c_in, c_out: channels (or features) in and out.
        kernel, stride, groups: convolution geometry (1 for linear layers).
        in_res, out_res: input / output side length (1 for linear and SE layers).
        macs: multiply-accumulates for one input image.
        params: weights + bias + the attached BatchNorm's affine parameters.
        stage: 1-based stage index; 0 for the classifier head.
        main: True for layers on the main path (they count towards depth and entropy);
            False for residual projections, SE layers and the classifier.
    """

    name: str
    kind: str
    c_in: int
    c_out: int
    kernel: int
    stride: int
    groups: int
    in_res: int
    out_res: int
    macs: int
    params: int
    stage: int
    main: bool

    @property
    def fan_in(self) -> int:
        """Inputs feeding one output unit: ``c_in / groups * kernel^2``."""
        return self.c_in // self.groups * self.kernel**2


class StageCost(NamedTuple):
    """Per-stage totals of a cost table (what ``archopt score`` prints)."""

    stage: int
    out_channels: int
    out_res: int
    layers: int
    macs: int
    params: int


def _spec_error(err: ValidationError) -> str:
    return format_validation_error(err, default_loc="spec")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _odd(v: int) -> int:
    if v % 2 == 0:
        raise ValueError(f"kernel must be odd, got {v}")
    return v


#: A convolution's kernel size: odd (a centred kernel, "same" padding ``k // 2``).
OddKernel = Annotated[int, AfterValidator(_odd)]


class Stem(_Model):
    """The first convolution: ``out`` channels, ``k`` x ``k`` kernel, ``stride``; ``pool`` adds a
    3x3 stride-2 max-pool (ImageNet ResNet / DenseNet stems)."""

    out: int = Field(ge=1)
    k: OddKernel = Field(3, ge=1)
    stride: int = Field(1, ge=1, le=4)
    pool: bool = False


class BlockGroup(_Model):
    """``L`` blocks of one kind in a row (resnet, mbv2): ``out`` channels, inner width ``btn``,
    kernel ``k``; the first has stride ``stride``."""

    out: int = Field(ge=1)
    btn: int = Field(ge=1)
    k: OddKernel = Field(3, ge=1)
    L: int = Field(1, ge=1)
    stride: int = Field(1, ge=1, le=2)


class ArchSpec(_Model):
    """Base of every architecture spec (one subclass per space).

    Fields common to all: ``name`` (free text), ``num_classes`` (0 = headless) and
    ``resolution`` (the input side length the spec was designed for; the default for
    :meth:`macs`).
    """

    space: ClassVar[str] = ""
    name: str | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise InvalidSpec(
                f"invalid {self.space} spec: {_spec_error(err)}") from None
    num_classes: int = Field(10, ge=0)
    resolution: int | None = Field(None, ge=1)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every family's build() first checks that the module fits in memory (a spec of a
        # million layers or a billion units validates, but would allocate for minutes and die).
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_memory_checked", False):
            cls.build = _memory_checked(build)  # type: ignore[method-assign]

    # -- to be provided by each family -----------------------------------------------------
    def build(self) -> Any:  # -> torch.nn.Module
        """Build the ``torch.nn.Module`` this spec describes."""
        raise NotImplementedError

    def cost_table(self, resolution: int | None = None) -> list[LayerCost]:
        """Every weight layer with its MACs and params at input side ``resolution``."""
        raise NotImplementedError

    def layers(self) -> int:
        """Depth: weight layers on the main path (classifier head excluded for CNNs)."""
        raise NotImplementedError

    def with_io(self, *, in_channels: int, resolution: int, num_classes: int) -> ArchSpec:
        """The same architecture adapted to a dataset's input and number of classes."""
        raise NotImplementedError

    def input_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        """Shape of one input example (without the batch dimension)."""
        raise NotImplementedError

    # -- derived -----------------------------------------------------------------------------
    def _res(self, resolution: int | None) -> int:
        res = resolution if resolution is not None else self.resolution
        if res is None:
            raise InvalidSpec(
                f"{self.space} spec has no 'resolution'; pass the input side length "
                "(e.g. --resolution 224)"
            )
        if res < 1:
            raise InvalidSpec(f"resolution must be >= 1, got {res}")
        return int(res)

    def macs(self, resolution: int | None = None) -> int:
        """Multiply-accumulates for one input of side ``resolution`` (default: the spec's)."""
        return sum(layer.macs for layer in self.cost_table(resolution))

    def params(self) -> int:
        """Trainable parameters of the built module."""
        return sum(layer.params for layer in self.cost_table(self._param_resolution()))

    def _param_resolution(self) -> int:
        # Parameter counts do not depend on the input size; any valid size will do.
        return self.resolution or 224

    def stage_table(self, resolution: int | None = None) -> list[StageCost]:
        """Per-stage totals: output channels and side, main-path layers, MACs, params.

        The classifier head is reported as stage 0 when present.
        """
        rows: dict[int, dict[str, int]] = {}
        for layer in self.cost_table(resolution):
            r = rows.setdefault(layer.stage, dict(out_channels=0, out_res=0, layers=0, macs=0,
                                                  params=0))
            r["macs"] += layer.macs
            r["params"] += layer.params
            if layer.main:
                r["layers"] += 1
                r["out_channels"] = layer.c_out
                r["out_res"] = layer.out_res
            elif layer.stage == 0:
                r["out_channels"] = layer.c_out
                r["out_res"] = 1
        return [StageCost(stage=s, **rows[s]) for s in sorted(rows, key=lambda s: (s == 0, s))]

    def cost_summary(self, resolution: int | None = None) -> dict[str, Any]:
        """MACs, params, layers and the per-stage table as a JSON-ready dict."""
        res = None if self.space == "mlp" else self._res(resolution)
        return {
            "space": self.space,
            "name": self.name,
            "resolution": res,
            "num_classes": self.num_classes,
            "macs": self.macs(res),
            "params": self.params(),
            "layers": self.layers(),
            "stages": [s._asdict() for s in self.stage_table(res)],
        }

    # -- memory ------------------------------------------------------------------------------
    def memory_estimate(self, *, resolution: int | None = None, batch_size: int = 0,
                        training: bool = False, optimizer_slots: int = 1,
                        dtype_bytes: int = 4) -> dict[str, float]:
        """Bytes the built module needs, deliberately on the high side (for refusing work
        that cannot fit, not for planning).

        Args:
            resolution: input side (default: the spec's; ignored by MLPs).
            batch_size: examples per forward pass (0: build only).
            training: a training step (gradients, optimiser state, saved activations) rather
                than an inference pass.
            optimizer_slots: optimiser state tensors per parameter (SGD momentum 1, Adam 2).
            dtype_bytes: bytes per number (float32: 4).

        Returns: ``{"layers", "params", "module", "activations", "total"}`` (bytes, except the
            counts): ``module`` is the weights plus :data:`MODULE_BYTES_PER_LAYER` of Python
            objects per weight layer; ``activations`` is ``batch_size`` times the elements of
            every layer's input and output (x2 when training: saved for the backward pass,
            plus their gradients) or of the largest layer (inference); training adds gradients
            and ``optimizer_slots`` copies of the weights.
        """
        if self.space == "mlp":
            res = None
        elif resolution is None and self.resolution is None and not batch_size:
            res = 224  # building only: weights do not depend on the input side
        else:
            res = self._res(resolution)
        table = self.cost_table(res)
        params = sum(layer.params for layer in table)
        sizes = [layer.c_in * layer.in_res**2 + layer.c_out * layer.out_res**2
                 for layer in table] or [0]
        module = len(table) * MODULE_BYTES_PER_LAYER + params * dtype_bytes
        if training:
            acts = 2 * batch_size * sum(sizes) * dtype_bytes
            state = params * dtype_bytes * (1 + optimizer_slots)
        else:
            acts = 2 * batch_size * max(sizes) * dtype_bytes
            state = 0
        return {"layers": float(len(table)), "params": float(params), "module": float(module),
                "activations": float(acts), "total": float(module + acts + state)}

    def check_memory(self, *, resolution: int | None = None, batch_size: int = 0,
                     training: bool = False, optimizer_slots: int = 1,
                     available: int | None = None, what: str | None = None) -> dict[str, float]:
        """Refuse (:class:`~archopt.errors.ResourceLimit`) work on this spec that would need
        more memory than is available, before allocating; see :meth:`memory_estimate`.

        A spec whose layer count alone would exhaust memory is refused before its cost table
        (itself ~300 bytes per layer) is made.

        Returns: the estimate.
        """
        from archopt.runtime.memory import require_memory

        label = what or (f"{'training' if training else 'building'} {self.space} spec"
                         + (f" {self.name!r}" if self.name else ""))
        depth = self.layers()
        require_memory(depth * (MODULE_BYTES_PER_LAYER + COST_ROW_BYTES),
                       f"{label} ({depth:,} layers)", available=available,
                       hint="use fewer layers")
        est = self.memory_estimate(resolution=resolution, batch_size=batch_size,
                                   training=training, optimizer_slots=optimizer_slots)
        hint = "fewer or narrower layers" + (", or a smaller batch or input resolution"
                                             if batch_size else "")
        require_memory(est["total"], f"{label} ({est['params']:,.0f} parameters, "
                       f"{est['layers']:,.0f} weight layers"
                       + (f", batch {batch_size}" if batch_size else "") + ")",
                       available=available, hint=hint)
        return est

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the ``space`` tag first."""
        return {"space": self.space, **self.model_dump(mode="json")}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        """Validate ``data`` (the ``space`` tag, if present, must match) into a spec.

        Raises: InvalidSpec with every offending field named.
        """
        data = dict(data)
        tag = data.pop("space", cls.space)
        if tag != cls.space:
            raise InvalidSpec(f"spec is for space {tag!r}, not {cls.space!r}")
        try:
            # cls(**data), not model_validate: __init__ already turns a ValidationError into
            # InvalidSpec, and pydantic would wrap that again (the prefix printed twice)
            return cls(**data)
        except TypeError as err:  # non-string keys
            raise InvalidSpec(f"invalid {cls.space} spec: {err}") from None
        except ValidationError as err:
            raise InvalidSpec(f"invalid {cls.space} spec: {_spec_error(err)}") from None

    def replace(self, **changes: Any) -> ArchSpec:
        """A copy with ``changes`` applied and re-validated."""
        return type(self).from_dict({**self.model_dump(), **changes})

    def describe(self) -> str:
        """A one-line human summary."""
        return self.name or self.space


class ConvSpec(ArchSpec):
    """Base of the image CNN spaces (resnet, mbv2, densenet): ``in_channels`` image channels
    into a :class:`Stem`; one example is ``(in_channels, resolution, resolution)``."""

    in_channels: int = Field(3, ge=1)
    stem: Stem

    def with_io(self, *, in_channels: int, resolution: int, num_classes: int) -> ArchSpec:
        return self.replace(in_channels=in_channels, resolution=resolution,
                            num_classes=num_classes)

    def input_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        r = self._res(resolution)
        return (self.in_channels, r, r)


#: Python-side memory of one built weight layer: its nn.Module with BatchNorm, activation and
#: containers (measured: 18.8 KB per conv layer of a built ResNet; rounded up).
MODULE_BYTES_PER_LAYER = 20_000
#: Memory of one row of a cost table (measured: 280 bytes).
COST_ROW_BYTES = 300


def _memory_checked(build: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(build)
    def checked(self: ArchSpec, *args: Any, **kwargs: Any) -> Any:
        self.check_memory()
        return build(self, *args, **kwargs)

    checked._memory_checked = True  # type: ignore[attr-defined]
    return checked


def check_stride(blocks: Sequence[Any]) -> None:
    for i, b in enumerate(blocks):
        if b.stride not in (1, 2):
            raise ValueError(f"block {i}: stride must be 1 or 2, got {b.stride}")
