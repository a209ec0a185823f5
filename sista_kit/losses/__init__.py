"""SISTA losses: composable modules on a functional core, with open_clip's loss contract.

from sista_kit.losses import SISTALoss, SparseTokenAlignLoss, SemanticInstanceAlignLoss
loss = SISTALoss(similarity="online")
terms = loss(**model_out, output_dict=True)   # {"instance_align_loss": ..., "token_align_loss": ...}
"""

from . import functional
from .chunked_infonce import fn_aware_infonce_chunked
from .functional import (
    fn_aware_infonce,
    sparse_alignment_weights,
    sparse_grouped_embeddings,
    sparse_token_align_loss,
    sparse_token_align_loss_reference,
)
from .registry import available_losses, build_loss, register_loss
from .sia import CLIPLoss, SemanticInstanceAlignLoss
from .sista import SIAConfig, SISTALoss, STAConfig
from .sta import SparseTokenAlignLoss

__all__ = [
    "functional",
    "CLIPLoss",
    "SemanticInstanceAlignLoss",
    "SparseTokenAlignLoss",
    "SISTALoss",
    "SIAConfig",
    "STAConfig",
    "available_losses",
    "build_loss",
    "register_loss",
    "fn_aware_infonce",
    "fn_aware_infonce_chunked",
    "sparse_alignment_weights",
    "sparse_grouped_embeddings",
    "sparse_token_align_loss",
    "sparse_token_align_loss_reference",
]
