"""Pretraining configuration: one dataclass, filled from a JSON/YAML file and the command line."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PretrainConfig", "load_config_file", "parse_value"]


@dataclass
class PretrainConfig:
    """Everything a pretraining run needs. Defaults train the tiny model on the embedded data on a CPU.

    Model / loss:
        model: built-in model config name (``sista-tiny``, ``sista-tiny-resnet``, ``sista-paper``), a
            JSON file or a dict (see :mod:`sista_kit.models.configs`).
        loss: registered loss name (``sista``, ``sia``, ``sta``, ``clip``, ``convirt``, ``gloria``, ``mgca``).
        loss_kwargs: hyperparameters of the loss (e.g. ``{"lambda_sta": 0.5, "similarity": "labels"}``).
    Data:
        data: ``synthetic`` (the embedded dataset, written once under ``data_dir``) or the folder of a
            written dataset.
        dataset_type: ``folder`` (read the dataset folder) or ``webdataset`` (stream its tar shards:
            ``data`` is a shard folder or a dataset folder holding ``shards/``; see
            :mod:`sista_kit.data.shards`); ``dataset_resampled`` draws shards with replacement and
            ``train_num_samples`` sets the samples per epoch (open_clip's options of those names).
        data_dir: where the synthetic dataset goes (default ``<logs>/_data/synthetic-n<N>-s<seed>-<px>``).
        num_samples, data_seed: size and seed of the synthetic dataset (all splits together).
        train_split, val_split: splits for pretraining and for retrieval evaluation; ``val_samples``
            caps the held-out set. With a ``val_split``, every epoch (and step 0) also logs held-out
            retrieval (R@1, R@5, same-finding R@1) to ``heldout.csv``.
        image_size: input size (default: the model's); ``augment``: light random affine / jitter.
        max_length: word pieces per report; ``vocab_size``: size of the tokenizer trained on the
            pretraining reports when ``tokenizer`` (a local tokenizer folder) is not given.
    Optimisation (open_clip's conventions): batch_size (per process), epochs, lr, wd, beta1, beta2,
        eps, warmup (steps), lr_scheduler (cosine | const), accum_freq, grad_clip_norm, precision
        (fp32 | amp | amp_bf16 | bf16), seed.
    Run: logs / name (run folder ``<logs>/<name>``), resume (None | ``latest`` | checkpoint folder),
        save_frequency (epochs), keep_checkpoints (newest kept; None = all), val_frequency (epochs; 0 =
        never), log_every_n_steps, workers, device (``auto`` | cpu | cuda), dist_backend (None = gloo on
        CPU, nccl on CUDA), ddp_find_unused_parameters, grad_checkpointing, progress.
    """

    model: str | dict[str, Any] = "sista-tiny"
    loss: str = "sista"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)

    data: str = "synthetic"
    data_dir: str | None = None
    dataset_type: str = "folder"
    dataset_resampled: bool = False
    train_num_samples: int | None = None
    num_samples: int = 2000
    data_seed: int = 0
    train_split: str = "pretrain"
    val_split: str | None = "val"
    val_samples: int | None = 256
    image_size: int | None = None
    augment: bool = False
    max_length: int = 128
    vocab_size: int = 4000
    tokenizer: str | None = None

    batch_size: int = 32
    epochs: int = 2
    lr: float = 5e-4
    wd: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup: int = 20
    lr_scheduler: str = "cosine"
    accum_freq: int = 1
    grad_clip_norm: float | None = None
    precision: str = "fp32"
    seed: int = 0

    logs: str = "./logs"
    name: str | None = None
    resume: str | None = None
    save_frequency: int = 1
    keep_checkpoints: int | None = None
    val_frequency: int = 1
    log_every_n_steps: int = 10
    workers: int = 2
    device: str = "auto"
    dist_backend: str | None = None
    ddp_find_unused_parameters: bool = True
    grad_checkpointing: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        checks = {
            "batch_size": self.batch_size >= 1,
            "epochs": self.epochs >= 1,
            "accum_freq": self.accum_freq >= 1,
            "num_samples": self.num_samples >= 2,
            "max_length": self.max_length >= 3,
            "lr": self.lr > 0,
            "warmup": self.warmup >= 0,
            "save_frequency": self.save_frequency >= 0,
            "log_every_n_steps": self.log_every_n_steps >= 1,
            "workers": self.workers >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                "invalid pretraining config: " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            )
        if self.dataset_type not in ("folder", "webdataset"):
            raise ValueError(f"dataset_type must be 'folder' or 'webdataset', got {self.dataset_type!r}")
        if self.dataset_type == "webdataset" and self.data == "synthetic":
            raise ValueError("dataset_type='webdataset' reads shards: give data= a shard or dataset folder")
        if self.train_num_samples is not None and self.train_num_samples < 1:
            raise ValueError(f"train_num_samples must be >= 1, got {self.train_num_samples}")
        if self.lr_scheduler not in ("cosine", "const"):
            raise ValueError(f"lr_scheduler must be 'cosine' or 'const', got {self.lr_scheduler!r}")
        if self.precision not in ("fp32", "amp", "amp_bf16", "amp_bfloat16", "bf16", "fp16"):
            raise ValueError(f"unknown precision {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PretrainConfig:
        """Build from a dict, naming unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown pretraining config keys: {', '.join(unknown)}")
        return cls(**values)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        values = yaml.safe_load(text) or {}
    else:
        values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of config keys")
    return values


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false, null, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
