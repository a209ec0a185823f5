"""Data: the embedded synthetic dataset, the IU reports track, real-dataset adapters, tokenizer, batches.

Every dataset on disk is a dataset folder (:mod:`sista_kit.data.folder`: layout, writer, readers).
"""

# The synthetic package first: its export module builds on data.folder, which reads its vocabulary.
from . import synthetic  # noqa: F401  (isort: skip)
from .datasets import PretrainDataset, build_synthetic, collate_pretrain
from .folder import read_manifest, require_dataset_folder
from .synthetic import CLASS_NAMES, LOCALISED, Sample, generate, label_fraction, load_dataset, write_dataset
from .tokenizer import encode_reports, load_tokenizer, train_tokenizer
from .transforms import ImageTransform

__all__ = [
    "CLASS_NAMES",
    "LOCALISED",
    "Sample",
    "generate",
    "write_dataset",
    "load_dataset",
    "label_fraction",
    "PretrainDataset",
    "collate_pretrain",
    "build_synthetic",
    "train_tokenizer",
    "load_tokenizer",
    "encode_reports",
    "ImageTransform",
    "read_manifest",
    "require_dataset_folder",
]
