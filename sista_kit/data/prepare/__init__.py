"""Prepare commands: the public chest X-ray datasets, from their official layouts to dataset folders.

    sista-prepare rsna --src /data/rsna-pneumonia --out data/rsna --image-size 224
    python -m sista_kit.data.prepare mimic-cxr --src /data/mimic-cxr-jpg --reports /data/mimic-cxr \
        --out data/mimic

See docs/data.md for each dataset's expected layout, split rule and class mapping.
"""

from .core import CHECKSUMS, FRACTIONS, prepare, staged_chunk
from .registry import DATASETS
from .study import Collected, Study

__all__ = ["DATASETS", "CHECKSUMS", "FRACTIONS", "Collected", "Study", "prepare", "staged_chunk"]
