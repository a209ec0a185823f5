"""Readers for real chest X-ray datasets in their official layouts (read from local disk only)."""

from .base import CHEXPERT_LABELS, RecordDataset, read_image
from .chexpert import CheXpert
from .covidx import COVIDx
from .mimic import MimicCXR, section_report
from .object_cxr import ObjectCXR, parse_annotation
from .rsna import RSNAPneumonia
from .siim import SIIMPneumothorax, rle_decode

__all__ = [
    "CHEXPERT_LABELS",
    "RecordDataset",
    "read_image",
    "CheXpert",
    "COVIDx",
    "MimicCXR",
    "section_report",
    "ObjectCXR",
    "parse_annotation",
    "RSNAPneumonia",
    "SIIMPneumothorax",
    "rle_decode",
]
