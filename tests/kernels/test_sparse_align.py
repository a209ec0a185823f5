"""Fused sparse alignment kernel against the PyTorch reference (forward and gradients)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from kernel_testing import assert_close, grads

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from sista_kit.kernels import sparse_grouped_embeddings_triton  # noqa: E402
from sista_kit.losses import SparseTokenAlignLoss  # noqa: E402
from sista_kit.losses.functional import sparse_grouped_embeddings  # noqa: E402


def _inputs(batch, length, patches, dim, device, dtype=torch.float32, seed=0, constant_pair=True):
    """Normalised tokens with a ragged mask, a fully masked pair, constant rows and a zero word."""
    gen = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(batch, patches, dim, generator=gen), dim=-1)
    text = F.normalize(torch.randn(batch, length, dim, generator=gen), dim=-1)
    mask = torch.rand(batch, length, generator=gen) > 0.3
    mask[:, 0] = True
    if batch > 1 and constant_pair:
        image[1] = image[1, :1].expand(patches, dim)  # all patches equal: every row constant (max == min)
        text[1, min(2, length - 1)] = 0.0  # a zero word: constant row too
    if batch > 2:
        mask[2] = False  # a pair with no real word
    image = image.to(device, dtype).requires_grad_()
    text = text.to(device, dtype).requires_grad_()
    return image, text, mask.to(device)


def _check_against_reference(image, text, mask, atol, rtol=0.0, **options):
    out = sparse_grouped_embeddings_triton(image, text, mask, **options)
    assert out.dtype == image.dtype and out.shape == text.shape
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.device, out.dtype)
    g_image, g_text = grads(out, (image, text), upstream)
    # the reference in fp32 on the same (possibly rounded) inputs
    ref_image = image.detach().float().requires_grad_()
    ref_text = text.detach().float().requires_grad_()
    ref = sparse_grouped_embeddings(ref_image, ref_text, mask, **options)
    r_image, r_text = grads(ref, (ref_image, ref_text), upstream.float())
    assert_close(out, ref, atol=atol, rtol=rtol, what="grouped embeddings")
    assert_close(g_image, r_image, atol=atol, rtol=rtol, what="d image_tokens")
    assert_close(g_text, r_text, atol=atol, rtol=rtol, what="d text_tokens")
    return out


@pytest.mark.parametrize(
    "options",
    [{}, {"threshold": 0.35}, {"sparsify": "topk", "k": 4}, {"sparsify": "topk", "k": 1}],
    ids=["threshold-1/P", "threshold-0.35", "topk-4", "topk-1"],
)
def test_matches_reference_odd_shapes(device, options):
    image, text, mask = _inputs(3, 7, 13, 24, device)
    out = _check_against_reference(image, text, mask, atol=2e-6, **options)
    assert out[2].abs().max() == 0, "a masked pair must get zero rows"
    expected_uniform = image.detach()[1].mean(dim=0)  # constant rows: uniform weights 1/P
    row = 2 if mask[1, 2] else 0
    assert_close(out[1, row], expected_uniform, atol=1e-6, what="uniform row")


@pytest.mark.parametrize(
    "shape", [(2, 9, 5, 17), (1, 3, 1, 5), (2, 5, 33, 8)], ids=["ragged", "one-patch", "P33"]
)
def test_ragged_tiles(device, shape):
    """Several word tiles with a ragged last one, P and D not powers of two, a single patch.

    No constant-row pair here: rows constant up to rounding tie at their minimum, where top-k has no
    unique gradient (amin's even split vs one arg-min); constant rows are covered above."""
    image, text, mask = _inputs(*shape, device, seed=3, constant_pair=False)
    _check_against_reference(image, text, mask, atol=2e-6, sparsify="topk", k=min(3, shape[2]))


def test_topk_keeps_all_when_k_is_p(device):
    image, text, mask = _inputs(2, 4, 6, 8, device, seed=5)
    _check_against_reference(image, text, mask, atol=2e-6, sparsify="topk", k=6)


@pytest.mark.parametrize("threshold", [None, 0.5], ids=["default-1/P", "0.5"])
def test_threshold_ties_are_kept(device, threshold):
    """Similarities exact in fp32, so that normalised weights fall exactly on the threshold."""
    image = torch.eye(4).unsqueeze(0)  # P = 4 one-hot patches, D = 4
    text = torch.tensor(
        [[[0.0, 0.25, 0.5, 1.0], [1.0, 0.5, 0.0, 0.75]]]
    )  # rows (0, .25, .5, 1), (1, .5, 0, .75)
    image, text = image.to(device).requires_grad_(), text.to(device).requires_grad_()
    mask = torch.ones(1, 2, dtype=torch.bool, device=device)
    out = _check_against_reference(image, text, mask, atol=1e-6, threshold=threshold)
    cut = 0.25 if threshold is None else 0.5
    kept = torch.tensor([0.0, 0.25, 0.5, 1.0])
    kept = torch.where(kept >= cut, kept, torch.zeros_like(kept))
    assert_close(out[0, 0], kept / kept.sum(), atol=1e-7, what="row with a tie at the threshold")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("sparsify", ["threshold", "topk"])
def test_half_precision_inputs(device, dtype, sparsify):
    image, text, mask = _inputs(3, 7, 13, 24, device, dtype=dtype, seed=7)
    _check_against_reference(image, text, mask, atol=2e-2, rtol=1e-2, sparsify=sparsify, k=4)


def test_mask_none_means_all_words(device):
    image, text, _ = _inputs(2, 3, 5, 8, device, seed=9)
    full = torch.ones(2, 3, dtype=torch.bool, device=device)
    assert torch.equal(
        sparse_grouped_embeddings_triton(image, text), sparse_grouped_embeddings_triton(image, text, full)
    )


def test_bad_inputs_raise_clear_errors(device):
    image = torch.randn(2, 5, 8, device=device)
    text = torch.randn(2, 3, 8, device=device)
    with pytest.raises(ValueError, match="feature size"):
        sparse_grouped_embeddings_triton(image, text[..., :4])
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        sparse_grouped_embeddings_triton(image.double(), text.double())
    with pytest.raises(TypeError, match="text_tokens is torch.float16"):
        sparse_grouped_embeddings_triton(image, text.half())
    with pytest.raises(ValueError, match="k must lie"):
        sparse_grouped_embeddings_triton(image, text, sparsify="topk", k=6)
    with pytest.raises(ValueError, match="unknown sparsify"):
        sparse_grouped_embeddings_triton(image, text, sparsify="softmax")
    with pytest.raises(ValueError, match="threshold must lie"):
        sparse_grouped_embeddings_triton(image, text, threshold=1.5)
    with pytest.raises(ValueError, match="text_mask must be a bool"):
        sparse_grouped_embeddings_triton(image, text, torch.ones(2, 3, device=device))
    with pytest.raises(ValueError, match="1..1024 patches"):
        sparse_grouped_embeddings_triton(
            torch.randn(1, 1025, 2, device=device), torch.randn(1, 1, 2, device=device)
        )


@pytest.mark.parametrize("padded", [False, True], ids=["full-mask", "padded-mask"])
@pytest.mark.parametrize("options", [{}, {"sparsify": "topk", "k": 3}], ids=["threshold", "topk"])
def test_loss_module_with_triton_backend(device, options, padded):
    """SparseTokenAlignLoss(backend="triton") equals backend="torch", value and gradients."""
    gen = torch.Generator().manual_seed(11)
    image = (2 * torch.randn(3, 13, 24, generator=gen)).to(device)
    text = (3 * torch.randn(3, 7, 24, generator=gen)).to(device)
    mask = torch.ones(3, 7, dtype=torch.bool)
    if padded:
        mask[0, 4:] = mask[2, 6:] = False
    mask = mask.to(device)
    results = []
    for backend in ("triton", "torch"):
        x, y = image.clone().requires_grad_(), text.clone().requires_grad_()
        out = SparseTokenAlignLoss(backend=backend, **options)(
            image_tokens=x, text_tokens=y, text_mask=mask, output_dict=True, image_features=None
        )
        loss = out["token_align_loss"]
        results.append((loss, *grads(loss, (x, y))))
    for name, a, b in zip(("loss", "d image_tokens", "d text_tokens"), *results, strict=True):
        assert_close(a, b, atol=1e-5, rtol=1e-5, what=name)
