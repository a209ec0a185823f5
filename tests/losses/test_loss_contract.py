"""The loss contract, for every registered loss (a new loss is tested here for free).

Each loss built by name takes the output dict of the real (tiny) CLIP model, returns named terms
ending in ``_loss``, backpropagates into both towers, and ignores inputs it does not use.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from sista_kit.data.synthetic import CLASS_NAMES
from sista_kit.losses import available_losses, build_loss
from sista_kit.losses.registry import loss_class
from sista_kit.models import TextBatch, build_model
from sista_kit.models.configs import model_config

B, SIZE, VOCAB, WORDS = 4, 32, 64, 6


@pytest.fixture(scope="module")
def model():
    cfg = model_config("sista-tiny", vision_cfg={"image_size": SIZE})
    cfg["text_cfg"]["hf_config"].update(vocab_size=VOCAB)
    torch.manual_seed(0)
    return build_model(cfg).train()


def _batch() -> tuple[torch.Tensor, TextBatch]:
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([WORDS, 3, 5, 2])
    ids = torch.randint(4, VOCAB, (B, WORDS + 2), generator=g)
    pos = torch.arange(WORDS + 2)[None]
    attention = (pos < (lengths + 2)[:, None]).long()
    ids = ids * attention
    word_ids = torch.where((pos >= 1) & (pos <= lengths[:, None]), pos - 1, torch.full_like(ids, -1))
    labels = torch.zeros(B, len(CLASS_NAMES))
    labels[1, 0] = labels[3, 0] = labels[2, 1] = 1.0  # two reports share a finding: a false negative
    texts = TextBatch(
        ids,
        attention,
        word_ids,
        report_embeddings=F.normalize(torch.randn(B, 8, generator=g), dim=-1),
        report_labels=labels,
        num_words=WORDS,
    )
    return torch.randn(B, 1, SIZE, SIZE, generator=g), texts


def _build(name: str, embed_dim: int) -> torch.nn.Module:
    """``build_loss(name)`` with its defaults, plus ``embed_dim`` where the loss takes it (as in training)."""
    params = inspect.signature(loss_class(name).__init__).parameters
    return build_loss(name, **({"embed_dim": embed_dim} if "embed_dim" in params else {}))


def test_registry_lists_every_shipped_loss():
    assert {"clip", "sia", "sta", "sista", "convirt", "gloria", "mgca"} <= set(available_losses())


@pytest.mark.parametrize("name", available_losses())
def test_loss_contract(name, model):
    loss = _build(name, model.config["embed_dim"])
    image, texts = _batch()
    model.zero_grad(set_to_none=True)
    out = model(image, texts)
    torch.manual_seed(2)
    terms = loss(**out, output_dict=True)

    assert isinstance(terms, dict) and terms, f"{name} returned {type(terms).__name__}, not a dict of terms"
    assert all(k.endswith("_loss") for k in terms), f"{name}: terms {sorted(terms)} must end in '_loss'"
    for key, value in terms.items():
        assert isinstance(value, torch.Tensor) and value.ndim == 0, f"{name}.{key} is not a scalar tensor"
        assert torch.isfinite(value), f"{name}.{key} = {value}"

    sum(terms.values()).backward()
    for part in ("visual.", "text."):
        found = [p.grad for n, p in model.named_parameters() if n.startswith(part) and p.grad is not None]
        assert any(g.abs().sum() > 0 for g in found), f"{name} gives no gradient to the {part} tower"

    # Inputs a loss does not use pass through **kwargs and change nothing (checked after the
    # backward: a loss may renormalise its own parameters in place, as MGCA does its prototypes).
    torch.manual_seed(2)
    with torch.no_grad():
        extra = loss(**out, unused_by_any_loss=torch.randn(3), another_extra="x", output_dict=True)
    assert set(extra) == set(terms)
    for key in terms:
        torch.testing.assert_close(extra[key], terms[key].detach())
