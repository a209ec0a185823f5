"""One training step of the tiny CLIP model under DDP (2 gloo ranks x B/2) equals one process on B,
for every registered loss.

Loss terms (averaged over ranks, as DDP averages gradients), every parameter gradient (model and
loss) and the weights after one optimizer step are compared. The model and batch are float64 and
dropout is off, so the only differences are summation order and STA's float32 rescaling factor.

ConVIRT and GLoRIA gather the global batch like the SISTA losses; their ``gather=False`` option
(the official per-GPU batch) is checked to differ. MGCA follows its official code: the Sinkhorn
codes are those of the global batch and the prototype gradient is averaged, but the image-text
term contrasts each rank's local batch, so its reference is that term averaged over the halves.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from dist_launch import run_ranks

from sista_kit.data.synthetic import CLASS_NAMES
from sista_kit.losses import available_losses, build_loss
from sista_kit.losses.normalize import normalize
from sista_kit.losses.registry import loss_class
from sista_kit.models import TextBatch, build_model
from sista_kit.models.configs import model_config

WORLD, B, SIZE, VOCAB, WORDS, LR = 2, 8, 32, 64, 6, 0.5
LOCAL_VARIANTS = {
    "convirt_local": ("convirt", {"gather": False}),
    "gloria_local": ("gloria", {"gather": False}),
}
# float64 throughout; STA's global-mean factor is a float32 scalar (rounding 6e-8 relative), which shows
# as up to ~2e-9 absolute on gradient entries of order 1 that nearly cancel; a wrong gather or scale
# differs by 1e-2 or more
TOL = dict(rtol=1e-6, atol=1e-7)


def _model() -> torch.nn.Module:
    cfg = model_config("sista-tiny", vision_cfg={"image_size": SIZE})
    cfg["text_cfg"]["hf_config"].update(
        vocab_size=VOCAB, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    torch.manual_seed(0)
    return build_model(cfg).double().train()


def _loss(name: str, embed_dim: int) -> torch.nn.Module:
    """The loss by name with its defaults (``embed_dim`` where it takes one), or a local-batch variant."""
    base, extra = LOCAL_VARIANTS.get(name, (name, {}))
    params = inspect.signature(loss_class(base).__init__).parameters
    torch.manual_seed(1)  # same loss parameters (MGCA prototypes) in every process
    loss = build_loss(base, **extra, **({"embed_dim": embed_dim} if "embed_dim" in params else {}))
    if hasattr(loss, "set_epoch"):
        loss.set_epoch(1)  # past MGCA's frozen-prototype epoch: the prototypes get a gradient too
    return loss.double()


def _batch(rows: slice, num_words: int | None) -> tuple[torch.Tensor, TextBatch]:
    """Rows of one global batch; pairs 1 and 5 (on different ranks) share a finding: a false negative.
    ``num_words=None`` sizes the word slots by the rows' longest report (6 on rank 0, 5 on rank 1), as
    training does."""
    g = torch.Generator().manual_seed(2)
    lengths = torch.tensor([WORDS, 3, 5, 2, 4, 5, 1, 3])
    pos = torch.arange(WORDS + 2)[None]
    attention = (pos < (lengths + 2)[:, None]).long()
    ids = torch.randint(4, VOCAB, (B, WORDS + 2), generator=g) * attention
    word_ids = torch.where((pos >= 1) & (pos <= lengths[:, None]), pos - 1, torch.full_like(ids, -1))
    labels = torch.zeros(B, len(CLASS_NAMES), dtype=torch.float64)
    labels[1, 0] = labels[5, 0] = labels[2, 1] = labels[3, 1] = 1.0
    embeddings = F.normalize(torch.randn(B, 8, generator=g, dtype=torch.float64), dim=-1)
    embeddings[5] = embeddings[1]
    image = torch.randn(B, 1, SIZE, SIZE, generator=g, dtype=torch.float64)
    texts = TextBatch(
        ids[rows],
        attention[rows],
        word_ids[rows],
        report_embeddings=embeddings[rows],
        report_labels=labels[rows],
        num_words=num_words,
    )
    return image[rows], texts


def _local_ita(out: dict, temperature: float) -> torch.Tensor:
    """MGCA's image-text term averaged over the ranks' halves of the batch (each its own softmax)."""
    half, parts = B // WORLD, []
    for r in range(WORLD):
        rows = slice(r * half, (r + 1) * half)
        logits = normalize(out["image_features"][rows]) @ normalize(out["text_features"][rows]).t()
        target = torch.arange(half)
        parts.append(
            F.cross_entropy(logits / temperature, target) + F.cross_entropy(logits.t() / temperature, target)
        )
    return sum(parts) / WORLD


def _terms(name: str, loss: torch.nn.Module, out: dict, distributed: bool) -> dict[str, torch.Tensor]:
    terms = loss(**out, output_dict=True)
    if name == "mgca" and not distributed:
        h = loss.hparams
        terms["ita_loss"] = h["lambda_1"] * _local_ita(out, h["softmax_temperature"])
    return terms


def _step(name: str, rows: slice, distributed: bool) -> dict:
    """Loss terms, gradients and updated weights of one SGD step on the ``rows`` of the global batch."""
    model = _model()
    loss = _loss(name, model.config["embed_dim"])
    named = [(f"model.{n}", p) for n, p in model.named_parameters()] + [
        (f"loss.{n}", p) for n, p in loss.named_parameters()
    ]
    wrapped = model
    if distributed:
        wrapped = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    optimizer = torch.optim.SGD([p for _, p in named], lr=LR)
    # MGCA's word-side softmax spans the padding slots too (its official default), so its value
    # depends on the slot count: every rank gets the global batch's.
    image, texts = _batch(rows, WORDS if name == "mgca" else None)
    terms = _terms(name, loss, wrapped(image, texts), distributed)
    sum(terms.values()).backward()
    grads = {n: p.grad.clone() for n, p in named if p.grad is not None}
    optimizer.step()
    return {
        "terms": {k: v.detach() for k, v in terms.items()},
        "grads": grads,
        "weights": {n: p.detach().clone() for n, p in named},
    }


def _rank_steps(rank: int, names: list[str]) -> dict:
    half = B // WORLD
    return {name: _step(name, slice(rank * half, (rank + 1) * half), True) for name in names}


NAMES = available_losses()


@pytest.fixture(scope="module")
def ranks() -> dict[int, dict]:
    """Every loss (and local-batch variant) stepped on 2 ranks, in one launch."""
    return run_ranks(_rank_steps, WORLD, NAMES + list(LOCAL_VARIANTS))


def _rank_mean(ranks: dict[int, dict], name: str, key: str) -> torch.Tensor:
    return sum(ranks[r][name]["terms"][key] for r in range(WORLD)) / WORLD


def _close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(got, want, **TOL, msg=lambda detail: f"{what}: {detail}")


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_two_ranks_step_equals_one_process(ranks, name):
    single = _step(name, slice(0, B), False)
    for rank in range(WORLD):
        got = ranks[rank][name]
        assert set(got["terms"]) == set(single["terms"])
        assert set(got["grads"]) == set(single["grads"]), f"{name}: other parameters got a gradient"
        for key, want in single["terms"].items():
            _close(_rank_mean(ranks, name, key), want, f"{name}.{key}")
        for n, want in single["grads"].items():
            assert want.abs().sum() > 0 or n.startswith("loss."), f"{name}: {n} has a zero gradient"
            _close(got["grads"][n], want, f"{name}: grad of {n}, rank {rank}")
        for n, want in single["weights"].items():
            _close(got["weights"][n], want, f"{name}: {n} after the step, rank {rank}")
    # the step really moved the weights (a step of zero would pass the comparison above too)
    before = {f"model.{n}": p for n, p in _model().named_parameters()}
    assert any(not torch.equal(single["weights"][n], p) for n, p in before.items()), (
        f"{name}: no weight moved"
    )


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LOCAL_VARIANTS))
def test_local_batch_option_differs_from_one_process(ranks, name):
    base = LOCAL_VARIANTS[name][0]
    single = _step(base, slice(0, B), False)
    # each rank contrasts its own half: fewer negatives, a smaller loss than over the global batch
    local = sum(_rank_mean(ranks, name, key) for key in single["terms"])
    assert local < sum(single["terms"].values()), f"{name}: gather=False gave the global-batch loss"
    for rank in range(WORLD):
        got = ranks[rank][name]["grads"]
        assert any(not torch.allclose(got[n], g, rtol=1e-4) for n, g in single["grads"].items())
