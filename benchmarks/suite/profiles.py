"""Benchmark profiles: how much data, pretraining and transfer each run does."""

from __future__ import annotations

import copy
from typing import Any

#: Report-similarity provider of SIA and SISTA: the negation-aware finding labeler on the report text
#: (``findings``). Its threshold, 0.9, was fixed before any benchmark run on development reports only
#: (even-indexed IU reports and generator text; docs/similarity.md); no test split informed it. On the
#: embedded data the observations are the generator's seven findings (``classes="synthetic"``); the
#: pipeline uses every observation (``"all"``) on other data.
TEXT_SIMILARITY: dict[str, Any] = {
    "similarity": "findings",
    "threshold": 0.9,
    "similarity_kwargs": {"classes": "synthetic"},
}

#: Every method and the loss it pretrains with (``random`` is not pretrained). ``oracle`` marks a method
#: that reads ground truth (the generator's finding sets): an upper bound, not a comparable method.
METHODS: dict[str, dict[str, Any] | None] = {
    "sista": {"loss": "sista", "loss_kwargs": dict(TEXT_SIMILARITY)},
    "sia": {"loss": "sia", "loss_kwargs": dict(TEXT_SIMILARITY)},
    "clip+sta": {"loss": "sista", "loss_kwargs": {"similarity": None}},  # SISTA without false negatives
    "clip": {"loss": "clip", "loss_kwargs": {}},
    "convirt": {"loss": "convirt", "loss_kwargs": {}},
    "gloria": {"loss": "gloria", "loss_kwargs": {}},
    "mgca": {"loss": "mgca", "loss_kwargs": {"num_prototypes": 64}},
    "sia-oracle": {"loss": "sia", "loss_kwargs": {"similarity": "labels"}, "oracle": True},
    "random": None,
}
#: How tables name a method (the oracle is labelled as the upper bound it is).
DISPLAY_NAMES = {"sia-oracle": "sia-oracle (ground-truth labels: upper bound)"}
TASKS = ("cls", "seg", "det", "loc")

# Localisation of all seven findings on the frozen encoder's patch grid (sista_kit.downstream.patch_probe):
# a logistic regression per finding on each cell's features, its L2 weight chosen per run on the
# validation split. Segmentation and detection of effusion do not separate the encoders (a trained FPN
# head on a frozen random ViT matches them); a linear read-out of each 8-px cell needs the encoder itself
# to say where each finding is, and costs seconds on a CPU, where the small findings at 128 px would
# quadruple pretraining.
LOC_TARGET = {"max_iter": 500}

# Segmentation and detection of one finding, as SIIM (pneumothorax masks) and RSNA (pneumonia boxes)
# are used in the field, with the encoder frozen (MGCA's protocol). The schedule is in epochs over the
# label subset (iterations = epochs x n_train / batch, within [min_iters, max_iters]); segmentation
# trains with class-weighted cross-entropy + Dice (effusion covers ~2 % of the pixels).
SEG_LOSS = [
    dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0, class_weight=[1.0, 10.0]),
    dict(type="DiceLoss", loss_weight=1.0),
]
SEG_TARGET = {
    "classes": ("background", "effusion"),
    "frozen": True,
    "lr": 1e-3,
    "options": {"model.decode_head.loss_decode": SEG_LOSS},
}
DET_TARGET = {"classes": ("effusion",), "frozen": True, "lr": 1e-3}

PROFILES: dict[str, dict[str, Any]] = {
    # CI-sized: every stage once, tiny everything.
    "smoke": {
        "data": {"num_samples": 240, "image_size": 64, "seed": 0},
        "pretrain": {
            "model": "sista-micro",
            "epochs": 1,
            "batch_size": 24,
            "lr": 1e-3,
            "warmup": 2,
            "max_length": 64,
            "vocab_size": 500,
            "val_split": "val",
            "log_every_n_steps": 2,
        },
        "pretrain_seeds": 1,
        "fractions": (0.1, 1.0),
        "cls": {"iters": 50},
        "seg": {"epochs": 1, "min_iters": 2, "max_iters": 4, "batch_size": 4, **SEG_TARGET},
        "det": {"epochs": 1, "min_iters": 2, "max_iters": 4, "batch_size": 4, **DET_TARGET},
        "loc": {"max_iter": 20},
        "diagnostics": {"samples": 48, "providers": ("tfidf", "labels", "findings")},
    },
    # The main job on this CPU (both cores): every method, 3 pretraining seeds, three label fractions.
    # Pretraining sees 11,100 distinct studies (5 epochs of 173 steps): on the 2,100 studies of an
    # even split the tiny towers memorised the training images (training InfoNCE fell while held-out
    # retrieval stayed at chance); the transfer pools keep their size (train 450, val 150, test 300).
    # The towers are sista-micro (3 vision blocks of width 128, one text layer): chosen on the
    # validation split and the training loss (CLIP, seed 0), 865 of its steps retrieved better (R@1
    # 0.140 vs 0.113) and reached a lower training InfoNCE (2.37 vs 2.86) than 519 steps of sista-mini
    # (4 blocks, 2 text layers) in about the same time; lr 2e-3 (2.91) and 3e-3 (no learning) and
    # gradient clipping at 1.0 (3.03) did worse than 1e-3 with sista-mini.
    "default": {
        "data": {
            "num_samples": 12000,
            "image_size": 64,
            "seed": 0,
            "split_fractions": {"pretrain": 0.925, "train": 0.0375, "val": 0.0125, "test": 0.025},
        },
        "pretrain": {
            "model": "sista-micro",
            "epochs": 5,
            "batch_size": 64,
            "lr": 1e-3,
            "warmup": 20,
            "max_length": 96,
            "vocab_size": 2000,
            "precision": "amp_bf16",  # 2x on this CPU (avx512_bf16) against fp32
            "val_split": "val",
            "log_every_n_steps": 4,
        },
        "pretrain_seeds": 3,
        "fractions": (0.01, 0.1, 1.0),
        "cls": {"iters": 300},
        # seg / det head lengths chosen on the validation split (benchmarks/choose_schedule.py, random
        # init and CLIP x 3 seeds, 30-480 iterations; docs/benchmark/schedule): per fraction the shortest
        # length whose mean lies within the best length's 95 % interval: 30 at 1 %, 240 at 10 %, 480 at 100 %,
        # which 43 epochs within 30-480 iterations give as 30 / 242 / 480 (subsets of 4 / 45 / 450, batch 8).
        "seg": {"epochs": 43, "min_iters": 30, "max_iters": 480, "batch_size": 8, **SEG_TARGET},
        "det": {"epochs": 43, "min_iters": 30, "max_iters": 480, "batch_size": 8, **DET_TARGET},
        "loc": dict(LOC_TARGET),
        "diagnostics": {
            "samples": 256,
            "fn_samples": 1024,
            "providers": ("encoder", "tfidf", "labels", "findings"),
        },
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
        "pretrain_seeds": 3,
        "fractions": (0.01, 0.1, 1.0),
        "cls": {"iters": 2000},
        "seg": {"epochs": 50, "min_iters": 500, "max_iters": 20000, "batch_size": 16},
        "det": {"epochs": 50, "min_iters": 500, "max_iters": 20000, "batch_size": 16},
        "loc": dict(LOC_TARGET),
        "diagnostics": {"samples": 1024, "providers": ("encoder", "tfidf", "labels", "findings")},
    },
}


# The default with 8 pretraining epochs (1,384 steps per run): held-out retrieval was still rising at
# the default's 5 epochs; about 1.6x the default's pretraining time.
PROFILES["full"] = copy.deepcopy(PROFILES["default"])
PROFILES["full"]["pretrain"]["epochs"] = 8


def get_profile(name: str) -> dict[str, Any]:
    """A deep copy of the named profile."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    return copy.deepcopy(PROFILES[name])
