"""Shapes the kernels support and sizes from which they pay (no triton import here)."""

from __future__ import annotations

import torch

#: Input dtypes the kernels read directly (accumulation is always fp32).
SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
#: Sparse alignment: a word's whole row of patch similarities is held in registers.
MAX_PATCHES = 1024
#: Tiled InfoNCE: the backward pass holds a (rows, D) fp32 accumulator per program.
MAX_DIM = 1024
#: ``auto`` picks the sparse-alignment kernel from this many multiply-adds (B * L * P * D) up.
MIN_SPARSE_ALIGN_WORK = 1 << 22
#: ``auto`` picks the tiled InfoNCE kernel from this global batch size up (its gain is memory).
MIN_INFONCE_BATCH = 4096
