"""The validation split every refine method uses, and one rule for where it comes from.

Registered datasets have a training and a test split only. Every refine method (``hbde``,
``logit-adjust``, ``bias``) follows the same rule, so their results are comparable:

- a validation split passed by the caller (``validation=(x, y)``, e.g. the hold-out a model
  was early-stopped on) is used as given, and the training split is used whole;
- otherwise a stratified ``fraction`` of the training split (per class, seeded by ``seed``:
  :meth:`archopt.data.ImageDataset.split_validation`) is held out, and the method trains /
  searches on the rest.

Selection (the logit-adjustment tau, the tuned biases) looks at the validation split only;
the test split is only reported. The split is recorded in every summary
(:meth:`ValidationSplit.record`). A model trained on the whole training split (``archopt
train`` holds nothing out) has seen a held-out split's examples, so its validation figures are
optimistic; ``seen_in_training`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from archopt.data.dataset import ImageDataset
from archopt.errors import ArchoptError

__all__ = ["ValidationSplit", "resolve_validation"]


@dataclass(frozen=True)
class ValidationSplit:
    """The validation images and labels, and how they were obtained.

    Attributes:
        x: (N, C, H, W) uint8 images.
        y: (N,) int64 labels.
        source: ``"held-out"`` (made from the training split) or ``"given"``.
        fraction, seed: of a held-out split (None for a given one).
        seen_in_training: whether the model may have been trained on these examples (a
            held-out split of a model trained on the whole training split: ``"unknown"``;
            a given split: ``"no"`` as far as the caller says).
    """

    x: torch.Tensor
    y: torch.Tensor
    source: str
    fraction: float | None = None
    seed: int | None = None
    seen_in_training: str = "unknown"

    def record(self, num_classes: int, train_size: int) -> dict[str, Any]:
        """JSON-ready description (the summaries' ``validation`` entry)."""
        return {"source": self.source, "size": len(self.y), "fraction": self.fraction,
                "seed": self.seed, "stratified": self.source == "held-out",
                "class_counts": torch.bincount(self.y, minlength=num_classes).tolist(),
                "train_size": train_size, "seen_in_training": self.seen_in_training,
                "used_for": "selection; the test split is reported only"}


def resolve_validation(data: ImageDataset,
                       validation: tuple[torch.Tensor, torch.Tensor] | None = None, *,
                       fraction: float = 0.1, seed: int = 0
                       ) -> tuple[ImageDataset, ValidationSplit]:
    """(the dataset to train / search on, the validation split) under the module's rule.

    Args:
        data: the dataset.
        validation: ``(x, y)`` a given validation split (x uint8 like ``data.train_x``), or None
            to hold one out of ``data``'s training split.
        fraction: the held-out share of each class, in (0, 1).
        seed: seed of the hold-out.

    Raises: ArchoptError for a fraction outside (0, 1), a held-out split or a remaining
        training split that would be empty, or a given split of the wrong shape.
    """
    if validation is not None:
        x, y = validation
        if len(x) != len(y) or len(y) == 0:
            raise ArchoptError(f"validation split: {len(x)} images and {len(y)} labels (need "
                               "the same, non-zero number)")
        if tuple(x.shape[1:]) != tuple(data.input_shape):
            raise ArchoptError(f"validation images have shape {tuple(x.shape[1:])}, dataset "
                               f"{data.name} has {tuple(data.input_shape)}")
        if y.min() < 0 or y.max() >= data.num_classes:
            raise ArchoptError(f"validation labels must lie in [0, {data.num_classes})")
        return data, ValidationSplit(x, y.long(), "given", seen_in_training="no")
    if not 0.0 < fraction < 1.0:
        raise ArchoptError(f"the validation fraction must be in (0, 1), got {fraction}")
    rest, (vx, vy) = data.split_validation(fraction, seed)
    if len(vy) == 0:
        raise ArchoptError(f"a validation fraction of {fraction} holds out no example of "
                           f"{data.name}'s {len(data.train_y)} training images; raise it")
    if len(rest.train_y) == 0:
        raise ArchoptError(f"a validation fraction of {fraction} leaves no training example")
    return rest, ValidationSplit(vx, vy, "held-out", float(fraction), int(seed))
