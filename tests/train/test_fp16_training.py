"""Pure float16 pretraining (``--precision fp16``: weights, activations and the losses in half precision)
of the real tiny model on CPU gives finite losses, gradients and weights.

What this guards: F.normalize's epsilon underflowed in float16 and the zero-padded word slots of
every batch normalised to NaN. The gradients of every step are seen through AdamW's state: one NaN
gradient makes the first moment NaN for good, one infinite gradient makes the second moment infinite.
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from tiny_runs import config_values, tiny_model, write_config

from sista_kit.data.datasets import PretrainDataset
from sista_kit.data.tokenizer import load_tokenizer
from sista_kit.models.checkpoint import load_train_state
from sista_kit.train.cli import main
from sista_kit.train.data import ContiguousDistributedSampler
from sista_kit.train.logs import read_csv

pytestmark = pytest.mark.slow

BATCH = 8


@pytest.mark.parametrize("loss", ["sta", "sista"])
def test_fp16_pretraining_stays_finite(tmp_path, data_dir, loss):
    values = config_values(
        tmp_path, data_dir, model=tiny_model(dropout=0.0), batch_size=BATCH, epochs=1, train_split="train"
    )
    config = write_config(tmp_path / "config.json", values)
    assert main(["--config", str(config), "--precision", "fp16", "--loss", loss, "--device", "cpu"]) == 0
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "epoch_1"

    rows = read_csv(run / "train.csv")
    assert len(rows) == 3
    terms = [k for k in rows[0] if k.endswith("_loss")]
    assert "token_align_loss" in terms
    for row in rows:
        assert all(math.isfinite(row[k]) for k in ["loss", *terms]), row

    weights = load_file(str(ckpt / "model.safetensors"))
    assert weights["logit_scale"].dtype == torch.float16  # the weights really were half precision
    assert all(torch.isfinite(w).all() for w in weights.values())

    moments = load_train_state(ckpt, required=True)["optimizer"]["state"]
    assert moments, "the optimizer took no step"
    for state in moments.values():
        assert torch.isfinite(state["exp_avg"]).all() and torch.isfinite(state["exp_avg_sq"]).all()
    assert any(state["exp_avg"].abs().sum() > 0 for state in moments.values())

    # every batch of the run had zero-padded word slots: reports of different lengths in each one
    data = PretrainDataset(data_dir, load_tokenizer(ckpt / "tokenizer"), values["max_length"], split="train")
    words = [int(data[i]["word_ids"].max()) + 1 for i in range(len(data))]
    order = list(ContiguousDistributedSampler(data, BATCH, seed=values["seed"]))
    for start in range(0, len(order), BATCH):
        batch = {words[i] for i in order[start : start + BATCH]}
        assert len(batch) > 1, f"batch {start // BATCH} has no padded word slots"
