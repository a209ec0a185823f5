"""Two torchrun "nodes" on this machine (loopback rendezvous, one gloo process each) run the real
pretraining command line, and equal one process on the same global batch; a fresh 2-node launch with
``--resume latest`` continues the saved run as if it had not stopped.

Every run uses the same initial weights, data order (the contiguous sampler), tokenizer and no
dropout or augmentation, so what differs between 2 nodes x 4 and 1 process x 8 is float32 summation
order in the all-gather and in DDP's gradient average. The logged global-batch loss terms agree to
about 1e-6 relative (checked at 1e-5). AdamW runs with eps = 1: its step is then about lr x gradient,
not lr x sign(gradient), so the weights see the gradients' scale (a gradient off by a factor 2, as a
missing or doubled average would give, moves them by ~1e-2; the runs agree to ~1e-7; checked at 1e-5).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from dist_launch import run_ranks, torchrun_nodes
from safetensors.torch import load_file
from tiny_runs import config_values, pretrain_rank, tiny_model, write_config

from sista_kit.models.checkpoint import load_train_state
from sista_kit.train import PretrainConfig, pretrain
from sista_kit.train.logs import read_csv

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

GLOBAL_BATCH, NODES = 8, 2
LOSS_TOL = dict(rel=1e-5, abs=1e-6)
WEIGHT_TOL = dict(rtol=1e-5, atol=1e-5)
# Terms that are the loss of the gathered global batch on every rank (rank 0's value is what is
# logged). STA's term is each rank's share of the global mean, so for sista it is checked through
# the weights only.
GLOBAL_TERMS = {
    "clip": ["loss", "contrastive_loss"],
    "convirt": ["loss", "i2t_loss", "t2i_loss"],
    "gloria": ["loss", "global_i2t_loss", "global_t2i_loss", "local_i2t_loss", "local_t2i_loss"],
    "sista": ["instance_align_loss"],
    "mgca": ["loss", "ita_loss", "word_loss", "patch_loss", "proto_loss"],
}
LOSS_KWARGS = {"mgca": {"num_prototypes": 16}}


def _values(logs: Path, data_dir: str, tokenizer_dir: str, loss: str, per_process: int, **kw) -> dict:
    """One epoch (3 steps) of the 'train' split; constant LR so that a longer run extends a shorter one."""
    values = dict(
        lr=1e-2,
        eps=1.0,
        model=tiny_model(dropout=0.0),
        batch_size=per_process,
        epochs=1,
        train_split="train",
        lr_scheduler="const",
        device="cpu",
        tokenizer=tokenizer_dir,
        loss_kwargs=LOSS_KWARGS.get(loss, {}),
    )
    return config_values(logs, data_dir, loss, **{**values, **kw})


def _two_nodes(logs: Path, values: dict, *flags: str) -> Path:
    """``python -m sista_kit.train --config <values> <flags>`` on 2 torchrun nodes; the run folder."""
    logs.mkdir(parents=True, exist_ok=True)
    config = write_config(logs / "config.json", values)
    nodes = torchrun_nodes(["sista_kit.train", "--config", str(config), *flags], nnodes=NODES)
    assert str(Path(values["logs"]) / "run" / "checkpoints") in nodes[0].stdout
    return Path(values["logs"]) / "run"


@pytest.fixture(scope="module")
def two_node_runs(tmp_path_factory, data_dir, tokenizer_dir) -> dict[str, Path]:
    """Run folders of the 2-node runs, launched once per loss when first asked for."""
    runs: dict[str, Path] = {}

    def get(loss: str) -> Path:
        if loss not in runs:
            logs = tmp_path_factory.mktemp(f"nodes-{loss}")
            runs[loss] = _two_nodes(logs, _values(logs, data_dir, tokenizer_dir, loss, GLOBAL_BATCH // NODES))
        return runs[loss]

    return get


def _weights(run: Path, epoch: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"epoch_{epoch}" / "model.safetensors"))


def _assert_same_run(got: Path, want: Path, terms: list[str], epoch: int) -> None:
    rows_got, rows_want = read_csv(got / "train.csv"), read_csv(want / "train.csv")
    assert [r["step"] for r in rows_got] == [r["step"] for r in rows_want]
    for term in terms:
        assert [r[term] for r in rows_got] == pytest.approx([r[term] for r in rows_want], **LOSS_TOL), term
        assert rows_got[0][term] != rows_got[-1][term], f"{term}: the steps changed nothing"
    w_got, w_want = _weights(got, epoch), _weights(want, epoch)
    assert set(w_got) == set(w_want)
    for key in w_want:
        torch.testing.assert_close(w_got[key], w_want[key], **WEIGHT_TOL, msg=f"weight {key}")


@pytest.mark.parametrize("loss", ["sista", "clip", "convirt", "gloria", "mgca"])
def test_two_nodes_equal_one_process(tmp_path, data_dir, tokenizer_dir, two_node_runs, loss):
    run = two_node_runs(loss)
    state = load_train_state(run / "checkpoints" / "epoch_1", required=True)
    assert state["world_size"] == NODES and len(state["rng"]) == NODES
    assert len(read_csv(run / "train.csv")) == 3
    if loss == "mgca":
        # MGCA's image-text term contrasts each rank's local batch, as its official code does: the
        # reference is 2 processes on one node (torch.multiprocessing), not one process.
        config = PretrainConfig(**_values(tmp_path, data_dir, tokenizer_dir, loss, GLOBAL_BATCH // NODES))
        run_ranks(pretrain_rank, NODES, config, init_group=False)
    else:
        pretrain(PretrainConfig(**_values(tmp_path, data_dir, tokenizer_dir, loss, GLOBAL_BATCH)))
    _assert_same_run(run, tmp_path / "run", GLOBAL_TERMS[loss], epoch=1)


def test_resume_latest_across_a_node_restart(tmp_path, data_dir, tokenizer_dir, two_node_runs):
    """The 1-epoch 2-node sista run is relaunched on 2 fresh nodes for 2 epochs with ``--resume latest``."""
    logs = tmp_path / "nodes"
    shutil.copytree(two_node_runs("sista").parent, logs)
    values = _values(logs, data_dir, tokenizer_dir, "sista", GLOBAL_BATCH // NODES, epochs=2)
    run = _two_nodes(logs, values, "--resume", "latest")
    state = load_train_state(run / "checkpoints" / "epoch_2", required=True)
    assert state["epoch"] == 2 and state["step"] == 6
    assert [r["step"] for r in read_csv(run / "train.csv")] == list(range(6))

    uninterrupted = tmp_path / "one"
    pretrain(
        PretrainConfig(**_values(uninterrupted, data_dir, tokenizer_dir, "sista", GLOBAL_BATCH, epochs=2))
    )
    _assert_same_run(run, uninterrupted / "run", GLOBAL_TERMS["sista"], epoch=2)
