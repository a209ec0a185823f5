"""The CLIP model: forward outputs, word grouping, attention maps, open_clip registration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sista_kit.models import TextBatch, build_model
from sista_kit.models.clip import _bert_cls_attention, length_groups, words_from_pieces
from sista_kit.models.configs import model_config


def _text_batch(B: int = 3, T: int = 12, vocab: int = 100, seed: int = 0) -> TextBatch:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    word_ids = torch.full((B, T), -1, dtype=torch.long)
    lengths = [T, T - 4, T - 7]
    for b, n in enumerate(lengths[:B]):
        ids[b, 0], ids[b, n - 1] = 2, 3  # [CLS] ... [SEP]
        ids[b, n:], mask[b, n:] = 0, 0
        # two pieces per word
        word_ids[b, 1 : n - 1] = torch.arange(n - 2) // 2
    return TextBatch(ids, mask, word_ids)


def _small(name: str = "sista-tiny", image_size: int = 32) -> dict:
    cfg = model_config(name)
    cfg["vision_cfg"]["image_size"] = image_size
    cfg["text_cfg"]["hf_config"].update(
        vocab_size=100, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    return cfg


@pytest.fixture(scope="module")
def vit_model():
    torch.manual_seed(0)
    return build_model(_small("sista-tiny")).eval()


@pytest.fixture(scope="module")
def resnet_model():
    torch.manual_seed(0)
    return build_model(_small("sista-tiny-resnet", 64)).eval()


def test_forward_keys_and_shapes_vit(vit_model):
    texts = _text_batch()
    out = vit_model(torch.randn(3, 1, 32, 32), texts)
    E, P, L = 128, (32 // 8) ** 2, texts.num_words
    assert L == 5
    expected = {
        "image_features": (3, E),
        "text_features": (3, E),
        "logit_scale": (),
        "image_tokens": (3, P, E),
        "text_tokens": (3, L, E),
        "text_mask": (3, L),
        "image_attention": (3, P),
        "text_attention": (3, L),
    }
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    assert out["text_mask"].dtype == torch.bool
    assert out["text_mask"].sum(1).tolist() == [5, 3, 2]
    torch.testing.assert_close(out["image_features"].norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out["text_features"].norm(dim=-1), torch.ones(3))
    assert 0 < float(out["logit_scale"].detach()) <= 100
    # [CLS] attention over patches: a softmax row without the [CLS] column
    assert (out["image_attention"] > 0).all() and (out["image_attention"].sum(-1) < 1).all()
    # word attention: zero on empty word slots, and at most the mass of the real pieces
    assert (out["text_attention"][~out["text_mask"]] == 0).all()
    assert (out["text_attention"].sum(-1) <= 1 + 1e-6).all()


def test_forward_resnet_tokens(resnet_model):
    out = resnet_model(torch.randn(2, 1, 64, 64), _text_batch(B=2))
    assert out["image_tokens"].shape == (2, 4, 128)  # 64 px / stride 32 = 2 x 2 cells
    torch.testing.assert_close(out["image_attention"], torch.full((2, 4), 0.25))


def test_extras_pass_through(vit_model):
    texts = _text_batch()
    texts.report_embeddings = torch.randn(3, 7)
    texts.report_labels = torch.zeros(3, 4)
    out = vit_model(torch.randn(3, 1, 32, 32), texts)
    assert out["report_embeddings"] is texts.report_embeddings and out["report_labels"] is texts.report_labels


def test_word_padding_does_not_change_outputs(vit_model):
    texts = _text_batch()
    pad = 6
    padded = TextBatch(
        F.pad(texts.input_ids, (0, pad), value=0),
        F.pad(texts.attention_mask, (0, pad), value=0),
        F.pad(texts.word_ids, (0, pad), value=-1),
        num_words=texts.num_words + 4,
    )
    image = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        a, b = vit_model(image, texts), vit_model(image, padded)
    L = texts.num_words
    for key in ("text_features", "image_features"):
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a["text_tokens"], b["text_tokens"][:, :L], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a["text_attention"], b["text_attention"][:, :L], atol=1e-6, rtol=1e-5)
    assert torch.equal(a["text_mask"], b["text_mask"][:, :L]) and not b["text_mask"][:, L:].any()


def _ragged_batch(B: int = 13, T: int = 40, vocab: int = 100) -> TextBatch:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (B, T), generator=g)
    lengths = torch.randint(3, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = (torch.arange(T) < lengths[:, None]).long()
    word_ids = torch.where(mask.bool(), torch.arange(T) // 2, -1)
    word_ids[:, 0] = -1  # [CLS]
    ids[~mask.bool()] = 0
    return TextBatch(ids, mask, word_ids)


def test_length_groups_sort_and_cover():
    mask = (torch.arange(10) < torch.tensor([10, 2, 9, 3, 2, 3, 10, 4])[:, None]).long()
    groups = length_groups(mask, 4, min_saving=0.0)
    assert sorted(torch.cat([idx for idx, _ in groups]).tolist()) == list(range(8))
    assert [t for _, t in groups] == [2, 3, 9, 10]
    assert all(int(mask[idx].sum(1).max()) == t for idx, t in groups)
    assert length_groups(mask, 1) is None  # off
    assert length_groups(torch.ones(8, 10, dtype=torch.long), 4) is None  # nothing to save
    assert length_groups(mask, 8) is None  # too few rows per group


def test_grouped_text_tower_equals_one_padded_batch(vit_model):
    """Running reports in length groups gives the outputs and gradients of one padded batch."""
    texts = _ragged_batch()
    assert length_groups(texts.attention_mask, 3) is not None
    results = []
    for groups in (1, 3):
        vit_model.text_groups = groups
        vit_model.zero_grad(set_to_none=True)
        out = vit_model(None, texts)
        (
            out["text_features"].sum() + out["text_tokens"].pow(2).mean() + out["text_attention"].sum()
        ).backward()
        grads = {n: p.grad.clone() for n, p in vit_model.text.named_parameters() if p.grad is not None}
        results.append((out, grads))
    vit_model.text_groups = type(vit_model).text_groups
    vit_model.zero_grad(set_to_none=True)
    (a, ga), (b, gb) = results
    for key in ("text_features", "text_tokens", "text_attention"):
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)
    assert torch.equal(a["text_mask"], b["text_mask"])
    assert ga.keys() == gb.keys() and ga
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], atol=1e-5, rtol=1e-4, msg=name)


def test_words_from_pieces_matches_loop():
    g = torch.Generator().manual_seed(1)
    pieces = torch.randn(2, 7, 3, generator=g)
    word_ids = torch.tensor([[-1, 0, 0, 1, 2, 2, -1], [-1, 0, 1, 1, 1, -1, -1]])
    words, mask = words_from_pieces(pieces, word_ids, 4)
    for b in range(2):
        for w in range(4):
            sel = word_ids[b] == w
            assert bool(mask[b, w]) == bool(sel.any())
            want = pieces[b, sel].mean(0) if sel.any() else torch.zeros(3)
            torch.testing.assert_close(words[b, w], want)
    sums, _ = words_from_pieces(pieces[..., 0], word_ids, 4, reduce="sum")
    torch.testing.assert_close(sums[0, 2], pieces[0, 4, 0] + pieces[0, 5, 0])


def test_vit_cls_attention_matches_full_attention(vit_model):
    trunk = vit_model.visual.trunk
    captured = {}
    hook = trunk.blocks[-1].register_forward_pre_hook(lambda m, a: captured.setdefault("x", a[0]))
    image = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        out = vit_model(image, None)
    hook.remove()
    blk = trunk.blocks[-1]
    x = blk.norm1(captured["x"])
    B, N, C = x.shape
    qkv = blk.attn.qkv(x).reshape(B, N, 3, blk.attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    attn = (qkv[0] @ qkv[1].transpose(-2, -1) * blk.attn.scale).softmax(-1)
    want = attn[:, :, 0, trunk.num_prefix_tokens :].mean(1)
    torch.testing.assert_close(out["image_attention"], want, atol=1e-6, rtol=1e-5)


def test_bert_cls_attention_matches_eager(vit_model):
    hf = vit_model.text.transformer
    texts = _text_batch()
    old = hf.config._attn_implementation
    hf.config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            ref = hf(
                input_ids=texts.input_ids,
                attention_mask=texts.attention_mask,
                output_attentions=True,
                output_hidden_states=True,
            )
    finally:
        hf.config._attn_implementation = old
    got = _bert_cls_attention(hf, ref.hidden_states, texts.attention_mask)
    torch.testing.assert_close(got, ref.attentions[-1][:, :, 0].mean(1), atol=1e-6, rtol=1e-5)


def test_text_batch_validation_and_move():
    texts = _text_batch()
    moved = texts.to("cpu", non_blocking=True)
    assert moved.num_words == texts.num_words and len(moved) == 3
    with pytest.raises(ValueError, match="word_ids shape"):
        TextBatch(texts.input_ids, texts.attention_mask, texts.word_ids[:, :5])
    with pytest.raises(TypeError, match="integer"):
        TextBatch(texts.input_ids.float(), texts.attention_mask, texts.word_ids)
    with pytest.raises(ValueError, match="num_words"):
        TextBatch(texts.input_ids, texts.attention_mask, texts.word_ids, num_words=2)
    with pytest.raises(ValueError, match="report_embeddings"):
        TextBatch(texts.input_ids, texts.attention_mask, texts.word_ids, report_embeddings=torch.zeros(2, 4))


def test_forward_rejects_bad_input(vit_model):
    with pytest.raises(TypeError, match="TextBatch"):
        vit_model(torch.randn(3, 1, 32, 32), torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="3 images but 2 reports"):
        vit_model(torch.randn(3, 1, 32, 32), _text_batch(B=2))


def test_registered_with_open_clip():
    import open_clip

    from sista_kit.models.configs import register_model_config

    name = register_model_config(_small())
    assert name in open_clip.list_models()
    clip = open_clip.create_model(name, pretrained_text=False, output_dict=True)
    assert clip.visual.trunk.patch_embed.proj.in_channels == 1


def test_text_tower_needs_local_folder():
    cfg = model_config("sista-tiny")
    cfg["text_cfg"].update(hf_config=None, hf_model_name="emilyalsentzer/Bio_ClinicalBERT", pretrained=True)
    with pytest.raises(FileNotFoundError, match="not a local folder"):
        build_model(cfg)
