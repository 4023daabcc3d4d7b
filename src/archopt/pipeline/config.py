"""``RunConfig``: every option of ``archopt run`` in one validated object (and one YAML file).

A run is reproducible from its resolved config alone: ``archopt run --config DIR/run.yaml``.
Defaults that depend on the dataset (budgets, training recipe) are filled in by
:meth:`RunConfig.resolve`, and the resolved values -- not the defaults -- are what the result
folder records.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from archopt.errors import ArchoptError
from archopt.runtime.settings import Settings

if TYPE_CHECKING:  # torch-heavy; imported when the structure stage is configured
    from archopt.structure.loop import StructureConfig
    from archopt.training import TrainConfig

__all__ = ["DEFAULT_BUDGETS", "DEFAULT_RECIPES", "DEFAULT_STRUCTURE", "InvalidRunConfig",
           "RunConfig"]


class InvalidRunConfig(ArchoptError, ValueError):
    """A run option out of range, misspelt, or a config file that cannot be read."""


#: Default budgets per dataset: small enough for a CPU (``digits``: the whole run < 3 minutes
#: on 2 cores); ``None`` = unbounded.
DEFAULT_BUDGETS: dict[str, dict[str, float | None]] = {
    "digits": {"macs": 2e6, "params": 5e5},
    "default": {"macs": 4e7, "params": 1e6},
}

#: Default training recipes (the same for the designed network and the baseline).
#: channels-last tensors: the same model, 1.3-1.8x faster convolutions on a CPU as well
#: (benchmarks/design_claim.py's networks), and what CUDA uses anyway.
_SGD_RECIPE: dict[str, Any] = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4,
                               "schedule": "cosine", "warmup_epochs": 1, "channels_last": True}
DEFAULT_RECIPES: dict[str, dict[str, Any]] = {
    "digits": {**_SGD_RECIPE, "epochs": 15, "batch_size": 64, "augment": "crop"},
    "mnist": {**_SGD_RECIPE, "epochs": 8, "batch_size": 128, "augment": "crop"},
    "svhn": {**_SGD_RECIPE, "epochs": 15, "batch_size": 128, "augment": "crop"},
    "default": {**_SGD_RECIPE, "epochs": 10, "batch_size": 128, "augment": "crop-flip"},
}

DEFAULT_RHO = {"resnet": 0.3, "mbv2": 0.5}

#: Defaults of the structure stage (ResNet channel selection, fine-tuning the trained designed
#: network): ASNG, eps0 = 0.25, 3 epochs at the run's learning rate (cosine, no warm-up),
#: half the run's batch per structure (lambda = 2 structures per step: the samples of one
#: ordinary step), then the compact network fine-tuned 2 epochs at the run's batch. Any
#: :class:`~archopt.structure.StructureConfig` or :class:`~archopt.training.TrainConfig` field
#: may be set in ``structure_options``.
DEFAULT_STRUCTURE = {"epochs": 3, "optimizer": "asng", "penalty": 0.25, "finetune_epochs": 2}


class RunConfig(Settings):
    """Options of ``archopt run``.

    Attributes:
        data, data_dir, verify: the dataset (``archopt datasets``), its folder, checksums.
        train_size, test_size: use a seeded random subset of the splits (CPU-sized runs).
        space: the DeepMAD search space (``resnet`` or ``mbv2``).
        budget_macs, budget_params, budget_layers, rho: design budgets (MACs and params of the
            whole network, classifier included; None = dataset default / unbounded).
        candidates: candidate structures the evolutionary search scores.
        baselines: the hand-designed families the design is compared with
            (:data:`archopt.pipeline.baseline.BASELINE_FAMILIES`): of each, the largest member
            (most MACs) within both the MACs and the params budget.
        baseline_blocks: fix the ResNet baseline's blocks per stage ``n`` (ResNet-(6n+2));
            None searches n = 1..9 with the width.
        seeds: train every network with this many seeds (``seed``, ``seed + 1``, ...); the
            table reports the mean and the verdict the paired differences.
        train: training options (:class:`archopt.training.TrainConfig` fields) over the dataset's
            default recipe; both networks get the same recipe.
        refine: add the refine stage (macro-F1 tuning of the designed network).
        refine_options: :class:`archopt.refine.RefineConfig` fields for that stage; ``method``
            defaults to :data:`archopt.refine.config.RUN_METHOD`, the best of the comparison in
            benchmarks/results/refine_compare.json.
        structure: add the structure stage: the trained designed network (a resnet) is
            fine-tuned jointly with a distribution over its superblocks' inner channels, with
            the complexity penalty, and compacted to a smaller spec
            (:func:`archopt.structure.resnet.run_resnet_structure`).
        structure_options: options for that stage: :class:`~archopt.structure.StructureConfig`
            fields (``optimizer`` sng | asng, ``penalty`` eps0, ``theta_lr``, ``lam``, ...) and
            :class:`~archopt.training.TrainConfig` fields for the fine-tuning (``epochs``,
            ``lr``, ``batch_size``, ...; the rest from ``train``). Defaults:
            :data:`DEFAULT_STRUCTURE`, ``lr`` = the run's, ``batch_size`` = half the run's.
        seed: one seed for design, training and refinement.
        device: ``auto``, ``cpu``, ``cuda``.
    """

    model_config = ConfigDict(extra="forbid", frozen=False)
    what: ClassVar[str] = "run config"
    error: ClassVar[type[ArchoptError]] = InvalidRunConfig

    data: str = "digits"
    data_dir: str | None = None
    verify: bool = True
    train_size: int | None = Field(None, ge=10)
    test_size: int | None = Field(None, ge=10)
    space: Literal["resnet", "mbv2"] = "resnet"
    budget_macs: float | None = Field(None, gt=0)
    budget_params: float | None = Field(None, gt=0)
    budget_layers: int | None = Field(None, ge=1)
    rho: float | None = Field(None, gt=0)
    candidates: int = Field(20_000, ge=256)
    baselines: list[Literal["resnet", "mbv2"]] = Field(
        default_factory=lambda: ["resnet", "mbv2"])
    baseline_blocks: int | None = Field(None, ge=1)
    seeds: int = Field(1, ge=1, le=20)
    train: dict[str, Any] = Field(default_factory=dict)
    refine: bool = False
    refine_options: dict[str, Any] = Field(default_factory=dict)
    structure: bool = False
    structure_options: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> RunConfig:
        """Read a YAML file; ``overrides`` (None ignored) win over the file.

        Raises: InvalidRunConfig (one line): unreadable, over 1 MiB, YAML aliases (refused:
            they can expand exponentially; see :mod:`archopt.runtime.configfile`), not a
            mapping, or an invalid option."""
        from archopt.runtime.configfile import read_yaml

        p = Path(path)
        data = read_yaml(p, what="run config", error=InvalidRunConfig) or {}
        if not isinstance(data, dict):
            raise InvalidRunConfig(f"{p}: a run config is a mapping of options")
        data.pop("resolved", None)
        return cls(**{**data, **{k: v for k, v in overrides.items() if v is not None}})

    def resolve(self) -> RunConfig:
        """Fill the dataset-dependent defaults (budgets, rho, training recipe, device, seed)."""
        budgets = DEFAULT_BUDGETS.get(self.data, DEFAULT_BUDGETS["default"])
        recipe = DEFAULT_RECIPES.get(self.data, DEFAULT_RECIPES["default"])
        train = {**recipe, **self.train, "seed": self.seed, "device": self.device}
        if ("warmup_epochs" not in self.train
                and isinstance(self.train.get("epochs"), (int, float))):
            # the recipe's warm-up must end before a short schedule does (--epochs 1)
            train["warmup_epochs"] = min(recipe["warmup_epochs"], 0.5 * train["epochs"])
        from archopt.refine.config import RUN_METHOD

        method = self.refine_options.get("method", RUN_METHOD)
        hbde = ({"n_bins": 10_000, "population": 20, "generations": 30, "super_batch": 128}
                if method == "hbde" else {})
        refine = {"method": method, **hbde, "metric": "f1", **self.refine_options,
                  "seed": self.seed, "device": self.device}
        structure = self.structure_options
        if self.structure:
            if self.space != "resnet":
                raise InvalidRunConfig(f"the structure stage selects the channels of a resnet; "
                                       f"it cannot run on the {self.space} space (use --space "
                                       "resnet, or drop --structure)")
            structure = _resolve_structure(self.structure_options, train)
        return self.model_copy(update={
            "structure_options": structure,
            "budget_macs": self.budget_macs if self.budget_macs is not None else budgets["macs"],
            "budget_params": (self.budget_params if self.budget_params is not None
                              else budgets["params"]),
            "rho": self.rho if self.rho is not None else DEFAULT_RHO[self.space],
            "train": train,
            "refine_options": refine,
        })

    def structure_configs(self) -> tuple[StructureConfig, TrainConfig]:
        """The structure stage's ``(StructureConfig, TrainConfig)`` from a resolved config."""
        return _structure_configs(self.structure_options, self.train)

    def to_yaml(self) -> str:
        from archopt.runtime.configfile import dump_yaml

        return dump_yaml(self.model_dump(mode="json"))

    def differences(self, saved: dict[str, Any],
                    ignore: frozenset[str] = frozenset({"device", "data_dir"})) -> list[str]:
        """``field: saved -> now`` for the options that differ from a saved resolved config."""
        mine = self.model_dump(mode="json")
        out = []
        for k, v in mine.items():
            if k in ignore:
                continue
            old = saved.get(k)
            if isinstance(v, dict) and isinstance(old, dict):
                old = {kk: vv for kk, vv in old.items() if kk != "device"}
                v = {kk: vv for kk, vv in v.items() if kk != "device"}
            if old != v:
                out.append(f"{k}: {old!r} -> {v!r}")
        return out


def _structure_configs(options: dict[str, Any], train: dict[str, Any]
                       ) -> tuple[StructureConfig, TrainConfig]:
    from archopt.structure.loop import StructureConfig
    from archopt.training import TrainConfig

    own = {k: v for k, v in options.items() if k in StructureConfig.model_fields}
    rest = {k: v for k, v in options.items() if k not in own}
    try:
        return (StructureConfig(**own),
                TrainConfig(**{**train, "warmup_epochs": 0, **rest}))
    except ArchoptError as err:
        raise InvalidRunConfig(f"structure_options: {err}") from None


def _resolve_structure(options: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
    """Every option of the structure stage, defaults filled in (what the run records)."""
    merged = {**DEFAULT_STRUCTURE, "lr": train["lr"],
              "batch_size": max(2, int(train["batch_size"]) // 2), **options,
              "seed": train["seed"], "device": train["device"]}
    structure, _ = _structure_configs(merged, train)
    return {**merged, **structure.to_dict()}
