"""Pretraining through open_clip_train's loop (torchrun / DDP on CPU with gloo, CUDA with nccl).

    from sista_kit.train import PretrainConfig, pretrain
    checkpoint = pretrain(PretrainConfig(loss="sista", epochs=2))

Command line: ``sista-pretrain --help`` or ``python -m sista_kit.train --help``.
"""

from sista_kit.train.config import PretrainConfig
from sista_kit.train.pretrain import pretrain

__all__ = ["PretrainConfig", "pretrain"]
