"""The fused STA path (autograd Functions over one buffer) against the plain reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sista_kit.losses import SISTALoss, SparseTokenAlignLoss
from sista_kit.losses.functional import (
    sparse_grouped_embeddings,
    sparse_token_align_loss,
    sparse_token_align_loss_reference,
    token_contrast_loss,
)
from sista_kit.losses.sta_fused import (
    NormalizeFunction,
    SparseGroupingFunction,
    TokenContrastFunction,
    sparse_grouped_embeddings_fused,
)


def _tokens(batch=4, length=9, patches=11, dim=6, dtype=torch.float64, seed=0):
    """Ragged mask, a fully masked pair, a constant-row pair and a zero word slot."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, patches, dim, generator=g, dtype=dtype)
    text = torch.randn(batch, length, dim, generator=g, dtype=dtype)
    mask = torch.rand(batch, length, generator=g) > 0.3
    mask[:, 0] = True
    image[1] = image[1, :1].expand(patches, dim)  # every word's row constant: uniform weights
    text[0, 3] = 0.0
    mask[2] = False
    return image.requires_grad_(), text.requires_grad_(), mask


def _grads(fn, *inputs):
    out = fn(*inputs)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
    grads = torch.autograd.grad(out, inputs, upstream)
    return (out.detach(), *grads)


OPTIONS = [
    {},
    {"threshold": 0.0},
    {"threshold": 0.6},
    {"sparsify": "topk", "k": 3},
    {"sparsify": "topk", "k": 11},
]


@pytest.mark.parametrize("options", OPTIONS, ids=["1/P", "t0", "t0.6", "top3", "topP"])
def test_grouping_matches_reference(options):
    image, text, mask = _tokens()
    patches, words = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    ours = _grads(lambda v, w: sparse_grouped_embeddings_fused(v, w, mask, **options), patches, words)
    ref = _grads(lambda v, w: sparse_grouped_embeddings(v, w, mask, **options), patches, words)
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-10, atol=1e-12)
    # Pair 1's rows are constant up to rounding: ties at the minimum, where amin's even split of the
    # gradient and the fused path's arg-min are both valid subgradients. Compared elsewhere.
    keep = torch.tensor([0, 2, 3])
    for a, b, what in zip(ours[1:], ref[1:], ("d patches", "d words"), strict=True):
        torch.testing.assert_close(
            a[keep], b[keep], rtol=1e-10, atol=1e-12, msg=lambda m, w=what: f"{w}: {m}"
        )


@pytest.mark.parametrize("options", OPTIONS, ids=["1/P", "t0", "t0.6", "top3", "topP"])
def test_loss_matches_reference(options):
    image, text, mask = _tokens(seed=1)
    ours = _grads(lambda v, w: sparse_token_align_loss(v, w, mask, **options), image, text)
    ref = _grads(lambda v, w: sparse_token_align_loss_reference(v, w, mask, **options), image, text)
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-10, atol=1e-12)
    keep = torch.tensor([0, 2, 3])  # pair 1: ties at the minimum (see test_grouping_matches_reference)
    for a, b in zip(ours[1:], ref[1:], strict=True):
        torch.testing.assert_close(a[keep], b[keep], rtol=1e-10, atol=1e-12)
    assert ours[2][2].abs().max() == 0, "a pair without a real word gets no gradient"


def test_contrast_matches_reference():
    _, text, mask = _tokens(seed=2)
    grouped = torch.randn(text.shape, dtype=text.dtype, generator=torch.Generator().manual_seed(3))
    grouped, words = F.normalize(grouped, dim=-1).requires_grad_(), F.normalize(text.detach(), dim=-1)
    words.requires_grad_()
    ours = _grads(lambda c, w: TokenContrastFunction.apply(c, w, mask, 0.1), grouped, words)
    ref = _grads(lambda c, w: token_contrast_loss(c, w, mask, 0.1), grouped, words)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_gradcheck_float64():
    image, text, mask = _tokens(batch=3, length=5, patches=7, dim=4, seed=4)
    gen = torch.Generator().manual_seed(8)  # no constant row or zero word: the map is smooth there
    image = torch.randn(image.shape, dtype=image.dtype, generator=gen)
    text = torch.randn(text.shape, dtype=text.dtype, generator=gen).requires_grad_()
    patches = F.normalize(image.detach(), dim=-1).requires_grad_()
    words = F.normalize(text.detach(), dim=-1).requires_grad_()
    for topk, cut in ((False, 1 / 7), (True, 0.0)):
        assert torch.autograd.gradcheck(
            lambda v, w, t=topk, c=cut: SparseGroupingFunction.apply(v, w, mask, t, c, 3), (patches, words)
        )
    assert torch.autograd.gradcheck(
        lambda c, w: TokenContrastFunction.apply(c, w, mask, 0.2), (patches[:, :5].clone(), words)
    )
    assert torch.autograd.gradcheck(lambda x: NormalizeFunction.apply(x, 1e-12), (text,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_zero_padded_slots_give_finite_gradients(dtype):
    """Zero-padded word slots, as the model gives them, and a real zero word: finite loss and gradients."""
    image, text, mask = _tokens(dtype=torch.float32, seed=6)
    text = text.detach().masked_fill(~mask[..., None], 0.0).to(dtype).requires_grad_()
    image = image.detach().to(dtype).requires_grad_()
    for loss_fn in (SparseTokenAlignLoss(backend="torch"), SISTALoss(similarity="online", lambda_sia=0.5)):
        image.grad = text.grad = None
        inputs = dict(image_tokens=image, text_tokens=text, text_mask=mask)
        features = dict(image_features=image.mean(1), text_features=text.mean(1), logit_scale=10.0)
        loss = loss_fn(**inputs, **features)
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(image.grad).all() and torch.isfinite(text.grad).all()
        ref = sparse_token_align_loss_reference(image.float(), text.float(), mask)
        if isinstance(loss_fn, SparseTokenAlignLoss):
            torch.testing.assert_close(loss.float(), ref, rtol=2e-2, atol=2e-2)


def test_contrast_at_low_temperatures():
    """The one-exp contrast holds where exp(-2/t) is normal; below that the loss takes the reference."""
    from sista_kit.losses.sta_fused import contrast_fits

    assert contrast_fits(0.07, torch.float32) and not contrast_fits(0.02, torch.float32)
    assert contrast_fits(0.02, torch.float64) and contrast_fits(0.05, torch.bfloat16)
    _, text, mask = _tokens(dtype=torch.float32, seed=7)
    gen = torch.Generator().manual_seed(9)
    grouped = F.normalize(torch.randn(text.shape, generator=gen), dim=-1).requires_grad_()
    words = F.normalize(text.detach(), dim=-1).requires_grad_()
    ours = _grads(lambda c, w: TokenContrastFunction.apply(c, w, mask, 0.03), grouped, words)
    ref = _grads(lambda c, w: token_contrast_loss(c, w, mask, 0.03), grouped, words)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    image, text, mask = _tokens(seed=8)
    for tau in (0.02, 0.001):
        got = sparse_token_align_loss(image.float(), text.float(), mask, temperature=tau)
        want = sparse_token_align_loss_reference(image.float(), text.float(), mask, temperature=tau)
        assert torch.isfinite(got)
        torch.testing.assert_close(got, want)
