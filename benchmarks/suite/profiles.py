"""Benchmark profiles: how much data, pretraining and transfer each run does."""

from __future__ import annotations

import copy
from typing import Any

#: Every method and the loss it pretrains with (``random`` is not pretrained).
#: SIA reads finding-label similarity: on the embedded data the text providers find few false
#: negatives (see the diagnostics table), as the general-domain sentence encoder is not made for reports.
METHODS: dict[str, dict[str, Any] | None] = {
    "sista": {"loss": "sista", "loss_kwargs": {"similarity": "labels"}},
    "sia": {"loss": "sia", "loss_kwargs": {"similarity": "labels"}},
    "sta": {"loss": "sta", "loss_kwargs": {}},
    "clip": {"loss": "clip", "loss_kwargs": {}},
    "convirt": {"loss": "convirt", "loss_kwargs": {}},
    "gloria": {"loss": "gloria", "loss_kwargs": {}},
    "mgca": {"loss": "mgca", "loss_kwargs": {"num_prototypes": 64}},
    "random": None,
}
TASKS = ("cls", "seg", "det")

# Segmentation and detection of one finding, as SIIM (pneumothorax masks) and RSNA (pneumonia boxes)
# are used in the field, with the encoder frozen (MGCA's protocol) and the head trained at lr 1e-3.
# On the embedded data the target is pleural effusion: the thin or small findings (pneumothorax,
# nodule, consolidation) do not learn within a CPU-sized schedule of 60 iterations.
SEG_TARGET = {"classes": ("background", "effusion"), "frozen": True, "lr": 1e-3}
DET_TARGET = {"classes": ("effusion",), "frozen": True, "lr": 1e-3}

PROFILES: dict[str, dict[str, Any]] = {
    # CI-sized: every stage once, tiny everything.
    "smoke": {
        "data": {"num_samples": 240, "image_size": 64, "seed": 0},
        "pretrain": {
            "model": "sista-tiny",
            "epochs": 1,
            "batch_size": 24,
            "lr": 1e-3,
            "warmup": 2,
            "max_length": 64,
            "vocab_size": 500,
            "val_split": None,
        },
        "fractions": (0.1, 1.0),
        "seeds": {"cls": 1, "seg": 1, "det": 1},
        "cls": {"iters": 50},
        "seg": {"iters": 4, "batch_size": 4, **SEG_TARGET},
        "det": {"iters": 4, "batch_size": 4, **DET_TARGET},
        "diagnostics": {"samples": 48, "providers": ("tfidf", "labels")},
    },
    # The main job on this CPU: under 20 minutes, every method, three label fractions.
    "default": {
        "data": {"num_samples": 3000, "image_size": 64, "seed": 0},
        "pretrain": {
            "model": "sista-tiny",
            "epochs": 3,
            "batch_size": 64,
            "lr": 1e-3,
            "warmup": 10,
            "max_length": 96,
            "vocab_size": 2000,
            "val_split": None,
        },
        "fractions": (0.01, 0.1, 1.0),
        "seeds": {"cls": 3, "seg": 1, "det": 1},
        "cls": {"iters": 300},
        "seg": {"iters": 60, "batch_size": 8, **SEG_TARGET},
        "det": {"iters": 60, "batch_size": 8, **DET_TARGET},
        "diagnostics": {"samples": 256, "providers": ("encoder", "tfidf", "labels")},
    },
    # Paper scale, for a GPU machine and real data (pass --data with a dataset folder).
    "paper": {
        "data": {"num_samples": 20000, "image_size": 224, "seed": 0},
        "pretrain": {
            "model": "sista-paper",
            "epochs": 50,
            "batch_size": 128,
            "lr": 2e-5,
            "warmup": 500,
            "max_length": 128,
            "vocab_size": 30522,
            "precision": "amp",
            "val_split": "val",
        },
        "fractions": (0.01, 0.1, 1.0),
        "seeds": {"cls": 3, "seg": 3, "det": 3},
        "cls": {"iters": 2000},
        "seg": {"iters": 4000, "batch_size": 16},
        "det": {"iters": 4000, "batch_size": 16},
        "diagnostics": {"samples": 1024, "providers": ("encoder", "tfidf", "labels")},
    },
}


def get_profile(name: str) -> dict[str, Any]:
    """A deep copy of the named profile."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    return copy.deepcopy(PROFILES[name])
