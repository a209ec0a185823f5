"""Tiny pretraining runs for the train tests: the embedded data at 64 px, the tiny model, one config.

The 'train' split of the 160-sample dataset holds 24 pairs: 3 steps per epoch at a global batch of 8.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sista_kit.train import PretrainConfig

IMAGE = 64


def build_data(folder: Path) -> str:
    """The embedded synthetic dataset (160 samples, seed 0, 64 px) written to ``folder``."""
    from sista_kit.data.datasets import build_synthetic

    return str(build_synthetic(folder, 160, seed=0, image_size=IMAGE))


def build_tokenizer(data_dir: str, folder: Path) -> str:
    """One tokenizer for runs that are compared: WordPiece training in `tokenizers` breaks count ties
    by hash-map order (huggingface/tokenizers#1794), so two separately trained vocabularies differ."""
    from sista_kit.data.synthetic.export import read_manifest
    from sista_kit.data.tokenizer import train_tokenizer

    train_tokenizer([r["report"] for r in read_manifest(data_dir, "train")], folder, vocab_size=400)
    return str(folder)


def tiny_model(dropout: float = 0.1) -> dict:
    """The ``sista-tiny`` config with the text tower's dropout set (0 for runs compared across launches)."""
    from sista_kit.models.configs import model_config

    cfg = model_config("sista-tiny")
    cfg["text_cfg"]["hf_config"].update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return cfg


def config_values(logs: Path | str, data_dir: str, loss: str = "sista", **kw: Any) -> dict[str, Any]:
    """The keys of a tiny run in ``<logs>/run`` (keyword arguments override them)."""
    values: dict[str, Any] = dict(
        model=tiny_model(),
        loss=loss,
        data=data_dir,
        image_size=IMAGE,
        batch_size=8,
        epochs=2,
        lr=1e-3,
        warmup=1,
        max_length=48,
        vocab_size=400,
        workers=0,
        log_every_n_steps=1,
        progress=False,
        val_split=None,
        logs=str(logs),
        name="run",
        seed=0,
    )
    values.update(kw)
    return values


def tiny_config(logs: Path | str, data_dir: str, loss: str = "sista", **kw: Any) -> PretrainConfig:
    """:func:`config_values` as a :class:`PretrainConfig`."""
    return PretrainConfig(**config_values(logs, data_dir, loss, **kw))


def write_config(path: Path, values: dict[str, Any]) -> Path:
    """``values`` as the JSON file the command line reads with ``--config``."""
    path.write_text(json.dumps(values))
    return path


def pretrain_rank(rank: int, config: PretrainConfig) -> Path:
    """``pretrain(config)`` in one spawned rank (``dist_launch.run_ranks(..., init_group=False)``)."""
    from sista_kit.train import pretrain

    return pretrain(config)
