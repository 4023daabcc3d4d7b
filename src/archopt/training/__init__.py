"""Training: a trainer for any spec or ``nn.Module``, schedules, metrics, checkpoints, DDP.

>>> from archopt.data import load_dataset
>>> from archopt.training import TrainConfig, train
>>> ds = load_dataset("digits")
>>> result = train("cnn-small", ds, TrainConfig(epochs=5), out="runs/digits", adapt=True)
>>> result.summary["test_accuracy"]                                   # doctest: +SKIP

Modules: ``config`` (TrainConfig), ``trainer`` (train, TrainResult), ``schedules`` (LRSchedule),
``metrics`` (confusion-matrix metrics, one or a population at a time), ``evaluation``
(evaluate, predict -- torchmetrics), ``checkpoint`` (save / load / load_model), ``distributed``
(torchrun), ``plots`` (training curves).
"""

from archopt.training.checkpoint import (
    load_checkpoint,
    load_model,
    save_checkpoint,
    spec_from_checkpoint,
)
from archopt.training.config import InvalidConfig, TrainConfig
from archopt.training.evaluation import evaluate, predict
from archopt.training.metrics import METRICS, get_metric, score_batch
from archopt.training.trainer import StopTraining, TrainResult, train

__all__ = [
    "METRICS",
    "InvalidConfig",
    "StopTraining",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "get_metric",
    "load_checkpoint",
    "load_model",
    "predict",
    "save_checkpoint",
    "score_batch",
    "spec_from_checkpoint",
    "train",
]
