"""Report-similarity providers for SIA (false-negative detection).

from sista_kit.similarity import build_similarity
provider = build_similarity("online")                       # model's own report embeddings
provider = build_similarity("labels")                       # finding labels
provider = build_similarity("tfidf", corpus=train_reports)  # TF-IDF 1-2 grams
provider = build_similarity("encoder", path="/models/cxr-bert")  # frozen local encoder
provider = build_similarity("findings", corpus=train_reports)  # labeler findings + wording

codes = label_reports(reports)                      # per-observation codes (labeler.Code)
result = calibrate(provider, texts, truth)          # AP, precision / recall, threshold
"""

from __future__ import annotations

from typing import Any

from .base import SOURCES, ReportSimilarity, TextReportSimilarity, similarity_from_embeddings
from .calibration import Calibration, calibrate, detection
from .encoder import EncoderSimilarity, default_encoder_path
from .findings import FindingsSimilarity
from .labeler import (
    Code,
    class_labels,
    finding_sets,
    label_report,
    label_reports,
    no_finding,
    report_labels,
)
from .labels import LabelSimilarity
from .online import OnlineSimilarity
from .tfidf import TfidfSimilarity

PROVIDERS: dict[str, type[ReportSimilarity]] = {
    "online": OnlineSimilarity,
    "labels": LabelSimilarity,
    "tfidf": TfidfSimilarity,
    "encoder": EncoderSimilarity,
    "findings": FindingsSimilarity,
}


def build_similarity(name: str | ReportSimilarity | None, **kwargs: Any) -> ReportSimilarity | None:
    """A provider from its name (online | labels | tfidf | encoder | findings); instances and None
    pass through."""
    if name is None or isinstance(name, ReportSimilarity):
        return name
    if name not in PROVIDERS:
        raise ValueError(
            f"unknown report-similarity provider {name!r}; expected one of {', '.join(PROVIDERS)}"
        )
    return PROVIDERS[name](**kwargs)


__all__ = [
    "SOURCES",
    "Calibration",
    "Code",
    "FindingsSimilarity",
    "calibrate",
    "class_labels",
    "detection",
    "finding_sets",
    "label_report",
    "label_reports",
    "no_finding",
    "report_labels",
    "ReportSimilarity",
    "TextReportSimilarity",
    "EncoderSimilarity",
    "LabelSimilarity",
    "OnlineSimilarity",
    "TfidfSimilarity",
    "build_similarity",
    "default_encoder_path",
    "similarity_from_embeddings",
]
