"""Datasets: a registry of loaders for the standard distribution formats, checksums, in-memory
batching and tensor augmentations (no torchvision).

>>> from archopt.data import load_dataset, BatchLoader
>>> ds = load_dataset("digits")          # embedded default; no download
"""

from archopt.data.dataset import ImageDataset, channel_stats, normalize
from archopt.data.loader import BatchLoader
from archopt.data.registry import (
    DATASETS,
    DatasetInfo,
    FileSpec,
    dataset_status,
    default_data_dir,
    load_dataset,
    register_dataset,
)
from archopt.data.transforms import (
    AUGMENTATIONS,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    augmentation,
)

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "BatchLoader",
    "Compose",
    "DatasetInfo",
    "FileSpec",
    "ImageDataset",
    "RandomCrop",
    "RandomHorizontalFlip",
    "augmentation",
    "channel_stats",
    "dataset_status",
    "default_data_dir",
    "load_dataset",
    "normalize",
    "register_dataset",
]
