"""Baseline pretraining losses with the same contract as the SISTA losses.

    from sista_kit.baselines import ConVIRTLoss, GLoRIALoss, MGCALoss
    loss = build_loss("gloria")                     # or "convirt", "mgca" (sista_kit.losses.build_loss)
    terms = loss(**model_out, output_dict=True)     # {"global_i2t_loss": ..., "local_i2t_loss": ...}

``build_loss`` finds them through the ``sista_kit.losses`` entry-point group declared in
``pyproject.toml`` (docs/architecture.md, "Registration"); the losses package never imports this one.

GLoRIA and MGCA match the official implementations on reference cases to float64 precision:
``python -m sista_kit.baselines.verify`` checks them.
"""

from .convirt import ConVIRTLoss, convirt_loss
from .gloria import GLoRIALoss, gloria_local_similarity, gloria_loss
from .mgca import MGCALoss, clipped_patch_weights, clipped_word_weights, mgca_loss
from .sinkhorn import sinkhorn_knopp

__all__ = [
    "ConVIRTLoss",
    "GLoRIALoss",
    "MGCALoss",
    "clipped_patch_weights",
    "clipped_word_weights",
    "convirt_loss",
    "gloria_local_similarity",
    "gloria_loss",
    "mgca_loss",
    "sinkhorn_knopp",
]
