"""The GPU tile configurations (64-row word tiles, 128 x 64 logit tiles...) under the interpreter.

The other tests use small interpreter tiles; these run the launch configurations a GPU would get,
on fp32 inputs (the only change from the interpreter path is then the tile shape).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from kernel_testing import assert_close, grads

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from sista_kit.kernels import sparse_align, tiled_infonce  # noqa: E402
from sista_kit.losses.functional import fn_aware_infonce, sparse_grouped_embeddings  # noqa: E402


@pytest.fixture
def gpu_tiles(monkeypatch, device):
    monkeypatch.setattr(sparse_align, "INTERPRET", False)
    monkeypatch.setattr(tiled_infonce, "INTERPRET", False)


@pytest.mark.parametrize("sparsify", ["threshold", "topk"])
def test_sparse_align_gpu_tiles(gpu_tiles, device, sparsify):
    cfg = sparse_align._launch_config(40, 70, 100, torch.float32)
    assert (cfg["BLOCK_L"], cfg["BLOCK_P"]) == (64, 128)
    gen = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(2, 70, 100, generator=gen), dim=-1).to(device).requires_grad_()
    text = F.normalize(torch.randn(2, 40, 100, generator=gen), dim=-1).to(device).requires_grad_()
    mask = (torch.rand(2, 40, generator=gen) > 0.2).to(device)
    out = sparse_align.sparse_grouped_embeddings_triton(image, text, mask, sparsify=sparsify)
    upstream = torch.randn(out.shape, generator=gen).to(device)
    ref = sparse_grouped_embeddings(image, text, mask, sparsify=sparsify)
    assert_close(out, ref, atol=2e-6, what="grouped embeddings")
    for name, a, b in zip(
        ("d image", "d text"),
        grads(out, (image, text), upstream),
        grads(ref, (image, text), upstream),
        strict=True,
    ):
        assert_close(a, b, atol=2e-6, what=name)


@pytest.mark.parametrize("strategy", ["eliminate", "positive"])
def test_tiled_infonce_gpu_tiles(gpu_tiles, device, strategy):
    fwd, bwd = tiled_infonce._launch_config(40, torch.float32)
    assert (fwd["BLOCK_M"], fwd["BLOCK_N"], bwd["BLOCK_M"]) == (128, 64, 64)
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(150, 40, generator=gen).to(device).requires_grad_()
    text = torch.randn(150, 40, generator=gen).to(device).requires_grad_()
    scale = torch.tensor(10.0, device=device, requires_grad=True)
    z = F.normalize(torch.randn(150, 40, generator=gen), dim=-1)
    z[1::7] = z[0]
    z = z.to(device)
    options = dict(threshold=0.5, strategy=strategy, neutral_band=(0.3, 0.5))
    out = tiled_infonce.fn_aware_infonce_tiled(image, text, scale, report_embeddings=z, **options)
    ref = fn_aware_infonce(image, text, scale, z @ z.T, **options)
    assert_close(out, ref, atol=2e-6, what="loss")
    for name, a, b in zip(
        ("d image", "d text", "d scale"),
        grads(out, (image, text, scale)),
        grads(ref, (image, text, scale)),
        strict=True,
    ):
        assert_close(a, b, atol=2e-6, what=name)
