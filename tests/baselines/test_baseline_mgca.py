"""MGCA: weights and Sinkhorn against loop references, padding, gradcheck, prototypes, module, errors."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from sista_kit.baselines import (
    MGCALoss,
    clipped_patch_weights,
    clipped_word_weights,
    mgca_loss,
    sinkhorn_knopp,
)
from sista_kit.losses import build_loss


def _inputs(
    b: int = 4, l: int = 6, p: int = 5, d: int = 8, k: int = 7, seed: int = 0
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, l + 1, (b,), generator=g)
    lengths[0] = l
    mask = torch.arange(l)[None, :] < lengths[:, None]
    attn = torch.rand(b, l, generator=g, dtype=torch.float64) * mask
    return {
        "image_features": torch.randn(b, d, generator=g, dtype=torch.float64),
        "text_features": torch.randn(b, d, generator=g, dtype=torch.float64),
        "image_tokens": torch.randn(b, p, d, generator=g, dtype=torch.float64),
        "text_tokens": torch.randn(b, l, d, generator=g, dtype=torch.float64),
        "text_mask": mask,
        "text_attention": attn,
        "image_attention": torch.rand(b, p, generator=g, dtype=torch.float64),
        "prototypes": F.normalize(torch.randn(k, d, generator=g, dtype=torch.float64), dim=1),
    }


def test_word_weights_match_per_sample_quantiles() -> None:
    g = torch.Generator().manual_seed(0)
    attn = torch.rand(5, 9, generator=g, dtype=torch.float64)
    attn[attn < 0.3] = 0.0  # zeros anywhere, a different count per row
    attn[3] = 0.0
    attn[3, 4] = 0.7  # a single non-zero entry
    got = clipped_word_weights(attn)
    for b in range(attn.shape[0]):  # the official per-sample recipe
        row = attn[b].clone()
        nz = row.nonzero().squeeze(1)
        lo, hi = torch.quantile(row[nz], 0.1), torch.quantile(row[nz], 0.9)
        row[nz] = row[nz].clip(lo, hi)
        torch.testing.assert_close(got[b], row / row.sum(), rtol=1e-14, atol=0)
    assert torch.all(got[attn == 0] == 0)
    # A row without any weight contributes nothing (no NaN).
    assert torch.all(clipped_word_weights(torch.zeros(2, 4)) == 0)


def test_patch_weights_match_per_sample_quantiles() -> None:
    attn = torch.rand(3, 11, dtype=torch.float64)
    got = clipped_patch_weights(attn, 0.2, 0.7)
    for b in range(3):
        row = attn[b].clip(torch.quantile(attn[b], 0.2), torch.quantile(attn[b], 0.7))
        torch.testing.assert_close(got[b], row / row.sum(), rtol=1e-14, atol=0)


def _sinkhorn_reference(scores: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    q = torch.exp(scores / eps).t()
    q /= q.sum()
    k, b = q.shape
    for _ in range(iters):
        q *= (1 / k / q.sum(dim=1)).unsqueeze(1)
        q *= (1 / b / q.sum(dim=0)).unsqueeze(0)
    return (q / q.sum(dim=0, keepdim=True)).t()


def test_sinkhorn_matches_reference_and_marginals() -> None:
    scores = (
        F.normalize(torch.randn(16, 5, dtype=torch.float64), dim=1)
        @ F.normalize(torch.randn(10, 5, dtype=torch.float64), dim=1).t()
    )
    codes = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    assert codes.dtype == torch.float32 and codes.shape == (16, 10)
    torch.testing.assert_close(codes.double(), _sinkhorn_reference(scores, 0.05, 3), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(codes.sum(1), torch.ones(16))
    # Many rounds: prototypes are used equally over the batch.
    long = sinkhorn_knopp(scores, epsilon=0.5, iterations=200).double()
    torch.testing.assert_close(long.sum(0), torch.full((10,), 1.6, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    # In float32, exp(cos / 0.01) overflows without the max shift; the codes stay finite.
    scores32 = torch.cat([scores.float(), torch.ones(1, 10)])
    assert not torch.isfinite(torch.exp(scores32 / 0.01)).all()
    sharp = sinkhorn_knopp(scores32, epsilon=0.01)
    assert torch.isfinite(sharp).all()
    torch.testing.assert_close(sharp.sum(1), torch.ones(17))


def test_gradcheck_tokens() -> None:
    x = _inputs(b=3, l=4, p=3, d=4, k=5, seed=1)
    tok = (x.pop("image_tokens").requires_grad_(), x.pop("text_tokens").requires_grad_())
    assert torch.autograd.gradcheck(lambda a, b: mgca_loss(image_tokens=a, text_tokens=b, **x)["loss"], tok)


@pytest.mark.parametrize("mask_pad_words", [False, True])
def test_gradcheck_global_and_prototypes_with_fixed_codes(mask_pad_words: bool) -> None:
    # The codes depend on the global embeddings without gradient: hold them fixed for gradcheck.
    x = _inputs(b=3, l=4, p=3, d=4, k=5, seed=2)
    with torch.no_grad():
        codes = mgca_loss(**x, return_intermediates=True)
    leaves = (
        x.pop("image_features").requires_grad_(),
        x.pop("text_features").requires_grad_(),
        x.pop("prototypes").requires_grad_(),
    )

    def f(img, rep, protos):
        return mgca_loss(
            img, rep, prototypes=protos, image_codes=codes["image_codes"], report_codes=codes["report_codes"],
            mask_pad_words=mask_pad_words, **x,
        )["loss"]  # fmt: skip

    assert torch.autograd.gradcheck(f, leaves)


def test_padding_with_mask_pad_words() -> None:
    x = _inputs()
    b, l, d = x["text_tokens"].shape
    mask = torch.cat([x["text_mask"], torch.zeros(b, 3, dtype=torch.bool)], 1)
    junk = 5 * torch.randn(b, l + 3, d, dtype=torch.float64)
    padded = dict(
        x,
        text_tokens=torch.where(mask[..., None], torch.cat([x["text_tokens"], junk[:, l:]], 1), junk),
        text_mask=mask,
        text_attention=torch.cat([x["text_attention"], torch.zeros(b, 3, dtype=torch.float64)], 1),
    )
    ref = mgca_loss(**x, mask_pad_words=True)
    tokens = padded["text_tokens"].requires_grad_()
    got = mgca_loss(**padded, mask_pad_words=True)
    for key in ("loss", "word_rows", "word_cols", "patch", "ita", "proto"):
        torch.testing.assert_close(got[key], ref[key], rtol=1e-12, atol=1e-12)
    got["loss"].backward()
    assert torch.all(tokens.grad[~mask] == 0)
    # The official word side keeps [PAD] slots as negatives: more padding changes it.
    official = mgca_loss(**padded)
    assert not torch.allclose(official["word"], mgca_loss(**x)["word"])
    torch.testing.assert_close(official["patch"], mgca_loss(**x)["patch"])


def test_cnn_branch_without_image_attention() -> None:
    x = _inputs()
    out = mgca_loss(**dict(x, image_attention=None), return_intermediates=True)
    torch.testing.assert_close(out["patch_weights"], torch.full((4, 5), 0.2, dtype=torch.float64))
    assert torch.isfinite(out["loss"])
    assert not torch.allclose(out["patch"], mgca_loss(**x)["patch"])
    no_patch = mgca_loss(**x, bidirectional=False)
    assert "patch" not in no_patch
    torch.testing.assert_close(no_patch["local"], no_patch["word"])


def _model_out(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {
        k: v.clone().requires_grad_(k.endswith(("features", "tokens")))
        for k, v in x.items()
        if k != "prototypes"
    }
    out["logit_scale"] = torch.tensor(14.0)
    return out


def test_module_contract_and_prototype_normalisation() -> None:
    x = _inputs()
    module = build_loss("mgca", embed_dim=8, num_prototypes=7).double()
    assert isinstance(module, MGCALoss) and module.prototypes.shape == (7, 8)
    with torch.no_grad():
        module.prototypes.mul_(3.0)
    module.set_epoch(1)
    terms = module(**_model_out(x), output_dict=True)
    assert set(terms) == {"ita_loss", "word_loss", "patch_loss", "proto_loss"}
    torch.testing.assert_close(module.prototypes.norm(dim=1), torch.ones(7, dtype=torch.float64))
    ref = mgca_loss(**dict(x, prototypes=module.prototypes.detach().double()))
    torch.testing.assert_close(sum(terms.values()), ref["loss"])
    torch.testing.assert_close(terms["word_loss"], ref["word"])
    weighted = MGCALoss(embed_dim=8, num_prototypes=7, lambda_1=2.0, lambda_2=0.5, lambda_3=0.25).double()
    weighted.load_state_dict(module.state_dict())
    weighted.set_epoch(1)
    w_terms = weighted(**_model_out(x), output_dict=True)
    torch.testing.assert_close(w_terms["ita_loss"], 2.0 * ref["ita"])
    torch.testing.assert_close(w_terms["patch_loss"], 0.5 * ref["patch"])
    torch.testing.assert_close(w_terms["proto_loss"], 0.25 * ref["proto"])


def test_prototypes_frozen_in_first_epoch() -> None:
    x = _model_out(_inputs())
    module = MGCALoss(embed_dim=8, num_prototypes=7)
    module.set_epoch(0)
    module(**x).backward()
    assert module.prototypes.grad is None
    module.set_epoch(1)
    module(**x).backward()
    assert module.prototypes.grad is not None and module.prototypes.grad.abs().sum() > 0

    by_steps = MGCALoss(embed_dim=8, num_prototypes=7, freeze_prototypes_steps=2)
    for _ in range(2):
        by_steps(**x).backward()
        assert by_steps.prototypes.grad is None
    by_steps(**x).backward()
    assert by_steps.prototypes.grad is not None
    with torch.no_grad():  # evaluation passes do not count as steps
        by_steps(**x)
    assert by_steps.step == 3


def test_warns_when_epoch_unknown() -> None:
    x = _model_out(_inputs())
    module = MGCALoss(embed_dim=8, num_prototypes=7)
    with pytest.warns(UserWarning, match="set_epoch"):
        module(**x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(**x)  # once only


def test_errors() -> None:
    x = _inputs()
    with pytest.raises(ValueError, match="image_tokens must have shape"):
        mgca_loss(**dict(x, image_tokens=x["image_tokens"][:, :, :5]))
    with pytest.raises(ValueError, match="text_attention must have shape"):
        mgca_loss(**dict(x, text_attention=x["text_attention"][:, :4]))
    with pytest.raises(ValueError, match="prototypes must have shape"):
        mgca_loss(**dict(x, prototypes=x["prototypes"][:, :3]))
    bad = x["text_attention"].clone()
    bad[1, 1] = float("nan")
    with pytest.raises(RuntimeError, match="text_attention contains NaN"):
        mgca_loss(**dict(x, text_attention=bad))
    with pytest.raises(RuntimeError, match="text_attention contains NaN"):
        MGCALoss(embed_dim=8, num_prototypes=7, freeze_prototypes_epochs=0)(
            **_model_out(dict(x, text_attention=bad))
        )
    with pytest.raises(ValueError, match="embed_dim=8"):
        MGCALoss(embed_dim=16, freeze_prototypes_epochs=0)(**_model_out(x))
    with pytest.raises(ValueError, match="quantile"):
        MGCALoss(quantile_low=0.9, quantile_high=0.1)


def test_local_terms_at_a_temperature_without_the_one_exp_path() -> None:
    """At local_temperature 0.01 float64 takes the one-exp path and float32 (exp(-200) is not a normal
    float32) the log-sum-exp path: they agree."""
    x = _inputs(seed=5)
    want = mgca_loss(**x, local_temperature=0.01)
    single = {k: v.float() if v.is_floating_point() else v for k, v in x.items()}
    got = mgca_loss(**single, local_temperature=0.01)
    for key in ("word", "patch"):
        assert torch.isfinite(got[key])
        torch.testing.assert_close(got[key].double(), want[key], rtol=1e-4, atol=1e-4)


def test_weighted_diag_ce_one_exp_path_matches_log_sum_exp() -> None:
    from sista_kit.baselines.mgca_ce import weighted_diag_ce

    gen = torch.Generator().manual_seed(3)
    sim = (torch.rand(3, 5, 5, generator=gen, dtype=torch.float64) * -20.0).requires_grad_()
    weights = torch.rand(3, 5, generator=gen, dtype=torch.float64)
    fast = weighted_diag_ce(sim, weights, bounded=True)
    slow = weighted_diag_ce(sim, weights)
    upstream = torch.tensor([0.7, 1.3], dtype=torch.float64)
    grads = [torch.autograd.grad(torch.stack(v) @ upstream, sim)[0] for v in (fast, slow)]
    torch.testing.assert_close(torch.stack(fast), torch.stack(slow), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda s: weighted_diag_ce(s, weights, bounded=True), (sim,))
