"""GLoRIA: chunked == unchunked, padding invariance, gradcheck, [CLS] handling, module contract, errors."""

from __future__ import annotations

import pytest
import torch

from sista_kit.baselines import GLoRIALoss, gloria_loss
from sista_kit.losses import build_loss

KEYS = ("loss", "global_i2t", "global_t2i", "local_i2t", "local_t2i")


def _inputs(b: int = 5, l: int = 6, p: int = 7, d: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, l + 1, (b,), generator=g)
    lengths[0] = l
    return {
        "image_features": torch.randn(b, d, generator=g, dtype=torch.float64),
        "text_features": torch.randn(b, d, generator=g, dtype=torch.float64),
        "image_tokens": torch.randn(b, p, d, generator=g, dtype=torch.float64),
        "text_tokens": torch.randn(b, l, d, generator=g, dtype=torch.float64),
        "text_mask": torch.arange(l)[None, :] < lengths[:, None],
    }


def _with_grads(
    inputs: dict[str, torch.Tensor], **kw
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    leaves = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in inputs.items()}
    out = gloria_loss(**leaves, **kw)
    out["loss"].backward()
    return out, {k: v.grad for k, v in leaves.items() if v.requires_grad}


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_chunked_equals_unchunked(chunk: int) -> None:
    x = _inputs()
    ref, ref_grads = _with_grads(x, return_logits=True, return_attention=True)
    got, got_grads = _with_grads(x, chunk_size=chunk, return_logits=True, return_attention=True)
    for key in (*KEYS, "local_logits", "attn_maps"):
        torch.testing.assert_close(got[key], ref[key], rtol=1e-12, atol=1e-12)
    for key in ref_grads:
        torch.testing.assert_close(got_grads[key], ref_grads[key], rtol=1e-12, atol=1e-12)


def test_chunked_without_grad_and_bad_chunk() -> None:
    x = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(gloria_loss(**x, chunk_size=2)["loss"], gloria_loss(**x)["loss"])
    with pytest.raises(ValueError, match="chunk_size"):
        gloria_loss(**x, chunk_size=0)


def test_padding_invariance_and_zero_padding_gradient() -> None:
    x = _inputs()
    ref, ref_grads = _with_grads(x)
    # Same texts with 3 more padding slots holding junk (large values), and junk in the old padding.
    padded = dict(x)
    b, l, d = x["text_tokens"].shape
    junk = 1e3 * torch.randn(b, l + 3, d, dtype=torch.float64)
    mask = torch.cat([x["text_mask"], torch.zeros(b, 3, dtype=torch.bool)], dim=1)
    padded["text_tokens"] = torch.where(mask[..., None], torch.cat([x["text_tokens"], junk[:, l:]], 1), junk)
    padded["text_mask"] = mask
    got, got_grads = _with_grads(padded, chunk_size=2)
    for key in KEYS:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-12, atol=1e-12)
    assert torch.all(got_grads["text_tokens"][~mask] == 0)
    torch.testing.assert_close(
        got_grads["text_tokens"][:, :l][x["text_mask"]], ref_grads["text_tokens"][x["text_mask"]]
    )
    torch.testing.assert_close(got_grads["image_tokens"], ref_grads["image_tokens"])


def test_mask_need_not_be_a_prefix() -> None:
    x = _inputs(seed=3)
    perm = torch.randperm(x["text_tokens"].shape[1])
    shuffled = dict(x, text_tokens=x["text_tokens"][:, perm], text_mask=x["text_mask"][:, perm])
    # The local loss is a set function of the used words: their order does not matter.
    for key in KEYS:
        torch.testing.assert_close(gloria_loss(**shuffled)[key], gloria_loss(**x)[key])


def test_gradcheck_small() -> None:
    x = _inputs(b=3, l=4, p=5, d=3, seed=1)
    mask = x.pop("text_mask")
    names = list(x)
    leaves = tuple(x[n].requires_grad_() for n in names)

    def f(*args):
        return gloria_loss(**dict(zip(names, args, strict=True)), text_mask=mask)["loss"]

    assert torch.autograd.gradcheck(f, leaves)

    def f_chunked(*args):
        return gloria_loss(**dict(zip(names, args, strict=True)), text_mask=mask, chunk_size=2)["loss"]

    assert torch.autograd.gradcheck(f_chunked, leaves)


def test_attention_maps_are_distributions_over_regions() -> None:
    x = _inputs()
    out = gloria_loss(**x, return_attention=True)
    sums = out["attn_maps"].sum(-1)
    torch.testing.assert_close(sums, x["text_mask"].to(sums.dtype))


def test_module_prepends_cls_slot() -> None:
    x = _inputs()
    module = build_loss("gloria")
    assert isinstance(module, GLoRIALoss) and module.include_cls
    terms = module(**x, logit_scale=torch.tensor(10.0), report_labels=None, output_dict=True)
    assert set(terms) == {"global_i2t_loss", "global_t2i_loss", "local_i2t_loss", "local_t2i_loss"}
    words = torch.cat([x["text_features"][:, None], x["text_tokens"]], 1)
    mask = torch.cat([torch.ones(5, 1, dtype=torch.bool), x["text_mask"]], 1)
    ref = gloria_loss(**dict(x, text_tokens=words, text_mask=mask))
    for name, key in [
        ("global_i2t_loss", "global_i2t"),
        ("local_i2t_loss", "local_i2t"),
        ("local_t2i_loss", "local_t2i"),
    ]:
        torch.testing.assert_close(terms[name], ref[key])
    torch.testing.assert_close(module(**x), ref["loss"])
    # An explicit [CLS] token from the model takes the slot instead of text_features.
    cls = torch.randn(5, 4, dtype=torch.float64)
    ref_cls = gloria_loss(
        **dict(x, text_tokens=torch.cat([cls[:, None], x["text_tokens"]], 1), text_mask=mask)
    )
    torch.testing.assert_close(module(**x, text_cls_token=cls), ref_cls["loss"])
    # Without the slot the module is the functional on the words alone.
    plain = GLoRIALoss(include_cls=False, local_weight=0.5, global_weight=2.0, chunk_size=2)
    ref_plain = gloria_loss(**x, local_weight=0.5, global_weight=2.0)
    torch.testing.assert_close(plain(**x), ref_plain["loss"])


def test_errors() -> None:
    x = _inputs()
    with pytest.raises(ValueError, match="batch size mismatch"):
        gloria_loss(**dict(x, image_tokens=x["image_tokens"][:4]))
    with pytest.raises(ValueError, match="token embedding size"):
        gloria_loss(**dict(x, text_tokens=x["text_tokens"][..., :3]))
    with pytest.raises(ValueError, match="text_mask must have shape"):
        gloria_loss(**dict(x, text_mask=x["text_mask"][:, :3]))
    with pytest.raises(TypeError, match="text_mask must be a bool"):
        gloria_loss(**dict(x, text_mask=x["text_mask"].long()))
    empty = x["text_mask"].clone()
    empty[2] = False
    with pytest.raises(RuntimeError, match="empty text"):
        gloria_loss(**dict(x, text_mask=empty))
    bad = x["image_tokens"].clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="image_tokens contains NaN"):
        gloria_loss(**dict(x, image_tokens=bad))
    with pytest.raises(RuntimeError, match="image_tokens contains NaN"):
        GLoRIALoss()(**dict(x, image_tokens=bad))
