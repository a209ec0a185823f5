"""STA reference: hand-computed cases, gradients, masks, invariances, dtypes and errors."""

from __future__ import annotations

import pytest
import torch
from reference_loops import sta_loop
from torch.autograd import gradcheck

from sista_kit.losses.functional import (
    sparse_alignment_weights,
    sparse_grouped_embeddings,
    sparse_token_align_loss,
)


def _tokens(b=3, length=7, p=13, d=24, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(b, p, d, generator=g, dtype=dtype)
    txt = torch.randn(b, length, d, generator=g, dtype=dtype)
    lengths = torch.tensor([length, max(1, length - 3), 2][:b] + [length] * max(0, b - 3))
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return img, txt, mask


def test_weights_hand_computed_threshold():
    sim = torch.tensor([[[0.0, 1.0, 2.0, 4.0]]])  # min 0, max 4 -> n = [0, .25, .5, 1]
    w = sparse_alignment_weights(sim, sparsify="threshold", threshold=0.5)
    expected = torch.tensor([0.0, 0.0, 0.5, 1.0]) / 1.5
    torch.testing.assert_close(w[0, 0], expected, atol=1e-6, rtol=0)


def test_weights_default_threshold_is_one_over_p_and_inclusive():
    sim = torch.tensor([[[0.0, 1.0, 3.0, 4.0]]])  # n = [0, .25, .75, 1]; 1/P = .25 is kept (>=)
    w = sparse_alignment_weights(sim)
    expected = torch.tensor([0.0, 0.25, 0.75, 1.0]) / 2.0
    torch.testing.assert_close(w[0, 0], expected, atol=1e-6, rtol=0)


def test_weights_topk_keeps_k_largest():
    sim = torch.tensor([[[0.0, 3.0, 1.0, 4.0, 2.0]]])  # n = [0, .75, .25, 1, .5]
    w = sparse_alignment_weights(sim, sparsify="topk", k=2)
    expected = torch.tensor([0.0, 0.75, 0.0, 1.0, 0.0]) / 1.75
    torch.testing.assert_close(w[0, 0], expected, atol=1e-6, rtol=0)


def test_weights_masked_rows_zero_constant_rows_uniform():
    sim = torch.randn(2, 3, 5)
    sim[0, 1] = 0.7  # constant row: max == min
    mask = torch.tensor([[True, True, False], [True, False, False]])
    w = sparse_alignment_weights(sim, mask)
    assert torch.all(w[0, 2] == 0) and torch.all(w[1, 1:] == 0)
    torch.testing.assert_close(w[0, 1], torch.full((5,), 0.2))
    torch.testing.assert_close(w[mask].sum(-1), torch.ones(int(mask.sum())))


def test_grouped_embeddings_match_weights():
    img, txt, mask = _tokens()
    img, txt = torch.nn.functional.normalize(img, dim=-1), torch.nn.functional.normalize(txt, dim=-1)
    w = sparse_alignment_weights(txt @ img.transpose(1, 2), mask)
    torch.testing.assert_close(sparse_grouped_embeddings(img, txt, mask), w @ img)


@pytest.mark.parametrize("sparsify", ["threshold", "topk"])
def test_matches_per_sample_loop(sparsify):
    img, txt, mask = _tokens(b=4, length=6, p=9, d=8)
    got = sparse_token_align_loss(img, txt, mask, sparsify=sparsify, k=3)
    want = sta_loop(img, txt, mask, sparsify=sparsify, k=3)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_hand_computed_single_pair():
    # Two orthogonal words, each exactly on one of two patches: grouped == word; logits = I / tau.
    img = torch.eye(2).unsqueeze(0)
    txt = torch.eye(2).unsqueeze(0)
    mask = torch.ones(1, 2, dtype=torch.bool)
    tau = 0.5
    loss = sparse_token_align_loss(img, txt, mask, temperature=tau)
    expected = -torch.log_softmax(torch.tensor([1 / tau, 0.0]), 0)[0]
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("sparsify", ["threshold", "topk"])
def test_gradcheck_float64(sparsify):
    img, txt, mask = _tokens(b=2, length=4, p=5, d=6)
    img.requires_grad_(True)
    txt.requires_grad_(True)
    fn = lambda a, b: sparse_token_align_loss(a, b, mask, sparsify=sparsify, k=2, temperature=0.3)  # noqa: E731
    assert gradcheck(fn, (img, txt), eps=1e-6, atol=1e-5)


def test_padding_invariance():
    img, txt, mask = _tokens(dtype=torch.float32)
    base = sparse_token_align_loss(img, txt, mask)
    junk = torch.randn(txt.shape[0], 5, txt.shape[2]) * 100
    padded = sparse_token_align_loss(
        img, torch.cat([txt, junk], 1), torch.cat([mask, torch.zeros(mask.shape[0], 5, dtype=torch.bool)], 1)
    )
    torch.testing.assert_close(base, padded)
    txt2 = txt.clone()
    txt2[~mask] = torch.randn(int((~mask).sum()), txt.shape[2])  # change padded slots only
    torch.testing.assert_close(base, sparse_token_align_loss(img, txt2, mask))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_zero_padded_words_stay_finite(dtype):
    """Models emit all-zero vectors in empty word slots: the loss and its gradients stay finite."""
    img, junk_padded, mask = _tokens(dtype=dtype)
    txt = junk_padded.masked_fill(~mask.unsqueeze(-1), 0.0).requires_grad_(True)
    loss = sparse_token_align_loss(img, txt, mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(txt.grad).all()
    torch.testing.assert_close(loss, sparse_token_align_loss(img, junk_padded, mask))


def test_padded_slots_get_no_gradient():
    img, txt, mask = _tokens()
    txt.requires_grad_(True)
    sparse_token_align_loss(img, txt, mask).backward()
    assert torch.all(txt.grad[~mask] == 0) and txt.grad[mask].abs().sum() > 0


def test_batch_permutation_invariance():
    img, txt, mask = _tokens(b=5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(
        sparse_token_align_loss(img, txt, mask), sparse_token_align_loss(img[perm], txt[perm], mask[perm])
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_close_to_fp32(dtype):
    img, txt, mask = _tokens(b=4, length=10, p=16, d=32, dtype=torch.float32)
    ref = sparse_token_align_loss(img, txt, mask, temperature=0.2)
    low = sparse_token_align_loss(img.to(dtype), txt.to(dtype), mask, temperature=0.2)
    assert torch.isfinite(low)
    assert abs(low.float() - ref).item() < 0.05 * ref.item()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sparsify="nope"), "unknown sparsify"),
        (dict(sparsify="topk", k=99), "k must lie"),
        (dict(threshold=1.5), "threshold must lie"),
        (dict(temperature=0.0), "temperature must be positive"),
    ],
)
def test_bad_options(kwargs, match):
    img, txt, mask = _tokens()
    with pytest.raises(ValueError, match=match):
        sparse_token_align_loss(img, txt, mask, **kwargs)


def test_bad_inputs():
    img, txt, mask = _tokens()
    with pytest.raises(ValueError, match="batch size"):
        sparse_token_align_loss(img[:2], txt, mask)
    with pytest.raises(ValueError, match="feature size"):
        sparse_token_align_loss(img[..., :5], txt, mask)
    with pytest.raises(TypeError, match="bool"):
        sparse_token_align_loss(img, txt, mask.long())
    with pytest.raises(ValueError, match="all False"):
        sparse_token_align_loss(img, txt, torch.zeros_like(mask))
    bad = img.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sparse_token_align_loss(bad, txt, mask)
    with pytest.raises(ValueError, match="shape"):
        sparse_token_align_loss(img, txt, mask[:, :3])


def test_sta_under_cpu_bf16_autocast_matches_float32():
    """Mixed precision training (``--precision amp_bf16``) runs STA's fused path in float32."""
    from sista_kit.losses import SparseTokenAlignLoss

    torch.manual_seed(0)
    img = torch.randn(3, 16, 8, requires_grad=True)
    txt = torch.randn(3, 7, 8, requires_grad=True)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    for sparsify in ("threshold", "topk"):
        loss = SparseTokenAlignLoss(sparsify=sparsify, k=4)
        ref = loss(image_tokens=img, text_tokens=txt, text_mask=mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = loss(image_tokens=img, text_tokens=txt, text_mask=mask)
        mixed.backward()
        assert torch.isfinite(mixed) and torch.allclose(mixed.float(), ref, atol=1e-5)
        assert torch.isfinite(img.grad).all() and torch.isfinite(txt.grad).all()
        img.grad = txt.grad = None
