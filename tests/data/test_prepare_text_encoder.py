"""A local Hugging Face folder (a tiny BERT saved with ``save_pretrained``) as the text tower and as the
``encoder`` report-similarity provider, loaded from disk only."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory, tokenizer):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-bert")
    BertModel(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_folder_as_encoder_provider(bert_folder, small_samples, monkeypatch):
    from sista_kit.similarity import build_similarity

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    provider = build_similarity("encoder", path=bert_folder)
    reports = [s.report for s in small_samples[:6]]
    emb = provider.embed(reports + reports[:1])
    assert emb.shape == (7, 32)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(7), atol=1e-5)
    assert torch.allclose(emb[0], emb[6], atol=1e-6)  # same report, same embedding
    assert not torch.allclose(emb[0], emb[1])
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_similarity("encoder", path=bert_folder / "absent")
    from sista_kit.losses import build_loss

    loss = build_loss("sia", similarity="encoder", similarity_kwargs={"path": str(bert_folder)})
    assert loss.similarity.path == bert_folder  # the loss's provider reads the same local folder


def test_folder_as_text_tower(bert_folder, monkeypatch):
    from transformers import BertModel

    from sista_kit.models.clip import build_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = build_model(
        "sista-tiny",
        text_cfg={
            "hf_model_name": str(bert_folder),
            "hf_config": None,
            "pretrained": True,
            "context_length": 64,
        },
    )
    saved = BertModel.from_pretrained(bert_folder, local_files_only=True).state_dict()
    tower = model.text.transformer.state_dict()
    key = "embeddings.word_embeddings.weight"
    assert torch.equal(tower[key], saved[key])  # the folder's weights, not a fresh init
    assert model.config["text_cfg"]["hf_config"]["hidden_size"] == 32
    with pytest.raises(FileNotFoundError, match="not a local folder"):
        build_model("sista-tiny", text_cfg={"hf_model_name": str(bert_folder / "absent"), "hf_config": None})
