"""Pretraining runs on the embedded data: losses decrease, exact resume, DDP (gloo) equals one process."""

from __future__ import annotations

import pytest
import torch
from dist_launch import run_ranks
from safetensors.torch import load_file
from tiny_runs import pretrain_rank, tiny_config, tiny_model

from sista_kit.losses import available_losses
from sista_kit.train import pretrain
from sista_kit.train.logs import read_csv


def _losses(run_dir) -> list[float]:
    return [row["loss"] for row in read_csv(run_dir / "train.csv")]


@pytest.mark.slow
@pytest.mark.parametrize("loss", available_losses())
def test_few_steps_decrease_each_loss(tmp_path, data_dir, loss):
    kwargs = {"loss_kwargs": {"num_prototypes": 16}} if loss == "mgca" else {}
    # the 24 pairs of the small 'train' split, seen for 4 epochs (3 steps each)
    ckpt = pretrain(tiny_config(tmp_path, data_dir, loss, epochs=4, train_split="train", **kwargs))
    values = _losses(tmp_path / "run")
    assert len(values) == 12 and all(torch.isfinite(torch.tensor(values)))
    first, last = sum(values[:3]) / 3, sum(values[-3:]) / 3
    assert last < first, f"{loss}: loss went from {first:.4f} to {last:.4f}"
    assert (ckpt / "model.safetensors").is_file() and ckpt.name == "epoch_4"


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, data_dir):
    # dropout on, so that the restored RNG state matters too
    full = pretrain(tiny_config(tmp_path / "a", data_dir, "clip", epochs=2))
    first_epoch = full.parent / "epoch_1"
    resumed = pretrain(tiny_config(tmp_path / "b", data_dir, "clip", epochs=2, resume=str(first_epoch)))
    a = read_csv(tmp_path / "a" / "run" / "train.csv")
    b = read_csv(tmp_path / "b" / "run" / "train.csv")
    steps_per_epoch = len(a) // 2
    assert [r["step"] for r in b] == [r["step"] for r in a[steps_per_epoch:]]
    assert [r["loss"] for r in b] == [r["loss"] for r in a[steps_per_epoch:]]
    wa, wb = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_resume_latest_after_interruption(tmp_path, data_dir):
    pretrain(tiny_config(tmp_path, data_dir, "clip", epochs=1, train_split="train"))
    ckpt = tmp_path / "run" / "checkpoints"
    (ckpt / ".epoch_2.tmp-deadbeef").mkdir()  # what an interrupted write leaves: never picked up
    out = pretrain(tiny_config(tmp_path, data_dir, "clip", epochs=2, train_split="train", resume="latest"))
    assert out == ckpt / "epoch_2"
    assert [r["step"] for r in read_csv(tmp_path / "run" / "train.csv")] == list(range(6))


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("loss", ["clip", "sia"])
def test_two_process_gloo_matches_one_process(tmp_path, data_dir, tokenizer_dir, loss):
    common = dict(
        model=tiny_model(dropout=0.0), epochs=1, train_split="train", device="cpu", tokenizer=tokenizer_dir
    )
    one = tiny_config(tmp_path / "one", data_dir, loss, batch_size=8, **common)
    two = tiny_config(tmp_path / "two", data_dir, loss, batch_size=4, **common)
    pretrain(one)
    run_ranks(pretrain_rank, 2, two, init_group=False)
    l1, l2 = _losses(tmp_path / "one" / "run"), _losses(tmp_path / "two" / "run")
    assert len(l1) == len(l2) == 3
    # same weights, same global batch: the loss over the gathered batch is the one-process loss
    assert l2[0] == pytest.approx(l1[0], rel=1e-6, abs=1e-7)
    # and the averaged gradients are the one-process gradients: the next steps follow (rounding only)
    assert l2[1:] == pytest.approx(l1[1:], rel=1e-5)
