"""Evaluation on a pretrained checkpoint: retrieval, word grounding, encoding a split.

Used by pretraining (held-out retrieval per epoch) and by the benchmark, and callable on any
checkpoint::

    from sista_kit.eval import encode_split, retrieval_metrics, pointing_game
"""

from .encode import encode_split, split_loader
from .grounding import pointing_game, word_patch_maps
from .retrieval import retrieval_metrics

__all__ = ["encode_split", "split_loader", "pointing_game", "word_patch_maps", "retrieval_metrics"]
