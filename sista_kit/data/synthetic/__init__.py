"""The embedded synthetic chest radiograph dataset: images, reports and ground truth."""

from .export import label_fraction, load_dataset, write_dataset
from .findings import CLASS_NAMES, LABEL_MAP_PRIORITY, LOCALISED, FindingArrays, finding_key
from .generator import Sample, generate, iter_chunks, pack_masks, unpack_masks

__all__ = [
    "CLASS_NAMES",
    "LOCALISED",
    "LABEL_MAP_PRIORITY",
    "FindingArrays",
    "Sample",
    "finding_key",
    "generate",
    "iter_chunks",
    "pack_masks",
    "unpack_masks",
    "write_dataset",
    "load_dataset",
    "label_fraction",
]
