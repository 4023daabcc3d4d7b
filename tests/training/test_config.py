"""TrainConfig: defaults by optimizer, validation errors that name the field, resume diffs."""

from __future__ import annotations

import json

import pytest

from archopt.errors import ArchoptError
from archopt.training import InvalidConfig, TrainConfig


def test_optimizer_dependent_defaults_and_json_round_trip():
    assert TrainConfig().lr == 0.1 and TrainConfig().weight_decay == 5e-4
    adam = TrainConfig(optimizer="adam")
    assert (adam.lr, adam.weight_decay) == (1e-3, 0.0)
    assert TrainConfig(optimizer="adamw").weight_decay == 0.05
    assert TrainConfig(optimizer="adam", lr=0.01).lr == 0.01
    cfg = TrainConfig(epochs=3, milestones=[0.75, 0.25], schedule="step")
    assert cfg.milestones == [0.25, 0.75]
    again = TrainConfig(**json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize(("fields", "named"), [
    ({"epochs": 0}, "epochs"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"lr": -1.0}, "lr"),
    ({"milestones": [1.5]}, "milestones"),
    ({"augment": "rotate"}, "augment"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs"),
    ({"min_lr": 1.0, "lr": 0.1}, "min_lr"),
    ({"batch_size": 64, "batchsize": 3}, "batchsize"),
])
def test_invalid_values_raise_invalid_config_naming_the_field(fields, named):
    with pytest.raises(InvalidConfig, match=named) as info:
        TrainConfig(**fields)
    assert isinstance(info.value, ArchoptError)
    assert "\n" not in str(info.value)


def test_differences_ignore_observation_only_fields():
    saved = TrainConfig(epochs=5, lr=0.1, device="cpu", eval_every=1).to_dict()
    now = TrainConfig(epochs=5, lr=0.1, device="cuda", eval_every=3, threads=1)
    assert now.differences(saved) == []
    changed = TrainConfig(epochs=6, lr=0.05)
    assert changed.differences(saved) == ["epochs: 5 -> 6", "lr: 0.1 -> 0.05"]


def test_from_any_applies_overrides_and_ignores_none():
    base = TrainConfig(epochs=4)
    cfg = TrainConfig.from_any(base, lr=None, batch_size=32)
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (4, 32, 0.1)
    assert TrainConfig.from_any({"epochs": 2}).epochs == 2
