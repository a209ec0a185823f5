"""Resume integrity: ``latest`` takes the newest intact checkpoint, falls back with a warning, and every
damaged file is named in the error."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_runs import tiny_config

from sista_kit.models.checkpoint import CheckpointError, load_train_state
from sista_kit.train import PretrainConfig, pretrain
from sista_kit.train.state import check_resumable, checkpoint_problem, latest_intact_checkpoint, resume_point


def _config(logs: Path, data_dir: str, **kw) -> PretrainConfig:
    """A 3-steps-per-epoch run of the tiny model on the 24 pairs of the 'train' split."""
    return tiny_config(logs, data_dir, **{"loss": "clip", "train_split": "train", **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Path:
    """An uninterrupted two-epoch run: <logs>/run with checkpoints epoch_1 and epoch_2."""
    logs = tmp_path_factory.mktemp("trained")
    pretrain(_config(logs, data_dir))
    return logs


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A private copy of the trained run's logs folder, to damage."""
    shutil.copytree(trained, tmp_path / "logs")
    return tmp_path / "logs"


def _ckpt(logs: Path, epoch: int) -> Path:
    return logs / "run" / "checkpoints" / f"epoch_{epoch}"


def _truncate(file: Path, keep: float = 0.5) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


def _damage_weights(folder: Path) -> str:
    _truncate(folder / "model.safetensors")
    return "model.safetensors"


def _damage_config(folder: Path) -> str:
    (folder / "config.json").write_text('{"vision_cfg": {')
    return "config.json"


def _truncate_state(folder: Path) -> str:
    _truncate(folder / "train_state.pt")
    return "train_state.pt"


def _empty_state(folder: Path) -> str:
    (folder / "train_state.pt").write_bytes(b"")
    return "train_state.pt"


def _remove_state(folder: Path) -> str:
    (folder / "train_state.pt").unlink()
    return "train_state.pt"


def _pickled_state(folder: Path) -> str:
    torch.save(
        {"epoch": 2, "optimizer": {}, "loss": {}, "x": argparse.Namespace(a=1)}, folder / "train_state.pt"
    )
    return "train_state.pt"


def _incomplete_state(folder: Path) -> str:
    torch.save({"epoch": 2}, folder / "train_state.pt")
    return "train_state.pt"


def _remove_weights(folder: Path) -> str:
    (folder / "model.safetensors").unlink()
    return "model.safetensors"


DAMAGES = {
    "truncated weights": (_damage_weights, CheckpointError, "not a readable safetensors"),
    "missing weights": (_remove_weights, FileNotFoundError, "not found"),
    "invalid config": (_damage_config, CheckpointError, "not valid JSON"),
    "truncated train state": (_truncate_state, CheckpointError, "not a readable training state"),
    "empty train state": (_empty_state, CheckpointError, "not a readable training state"),
    "missing train state": (_remove_state, FileNotFoundError, "holds no training state"),
    "pickled object in train state": (_pickled_state, CheckpointError, "not a readable training state"),
    "incomplete train state": (_incomplete_state, CheckpointError, "lacks optimizer, loss"),
}


def test_intact_checkpoints_pass(trained):
    for epoch in (1, 2):
        assert checkpoint_problem(_ckpt(trained, epoch)) is None
        assert check_resumable(_ckpt(trained, epoch))["epoch"] == epoch
    point = resume_point("latest", trained / "run" / "checkpoints")
    assert point is not None and point.path == _ckpt(trained, 2) and point.train_state["epoch"] == 2
    assert resume_point(None, trained / "run" / "checkpoints") is None


def test_latest_without_checkpoints_starts_afresh(tmp_path):
    assert latest_intact_checkpoint(tmp_path / "missing") is None
    (tmp_path / ".epoch_3.tmp-1234").mkdir()  # an interrupted write is no checkpoint
    assert resume_point("latest", tmp_path) is None


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_checkpoint_is_named(run_copy, damage):
    apply, error, message = DAMAGES[damage]
    folder = _ckpt(run_copy, 2)
    file = folder / apply(folder)
    with pytest.raises(error, match=message) as info:
        check_resumable(folder)
    assert str(file) in str(info.value)
    assert str(file) in checkpoint_problem(folder)


def test_load_train_state_names_the_file(run_copy):
    folder = _ckpt(run_copy, 1)
    _truncate_state(folder)
    with pytest.raises(CheckpointError, match="train_state.pt is not a readable training state"):
        load_train_state(folder)
    (folder / "train_state.pt").unlink()
    assert load_train_state(folder) is None
    with pytest.raises(FileNotFoundError, match=r"epoch_1/train_state.pt not found"):
        load_train_state(folder, required=True)


@pytest.mark.parametrize("damage", ["truncated weights", "invalid config", "missing train state"])
def test_latest_falls_back_to_older_intact_and_continues_exactly(run_copy, data_dir, damage, caplog):
    # the uninterrupted run's epoch 2, copied out of the file (safetensors maps it; damaging it follows)
    expected = {k: v.clone() for k, v in load_file(str(_ckpt(run_copy, 2) / "model.safetensors")).items()}
    name = DAMAGES[damage][0](_ckpt(run_copy, 2))
    with caplog.at_level(logging.WARNING, logger="sista_kit.train"):
        out = pretrain(_config(run_copy, data_dir, resume="latest"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    skipped = [w for w in warnings if "skipping" in w and str(_ckpt(run_copy, 2)) in w]
    assert skipped and name in skipped[0], warnings
    assert any(f"falling back to {_ckpt(run_copy, 1)}" in w for w in warnings), warnings
    assert out == _ckpt(run_copy, 2) and checkpoint_problem(out) is None  # rewritten, intact
    got = load_file(str(out / "model.safetensors"))
    assert got.keys() == expected.keys()
    assert [k for k in expected if not torch.equal(got[k], expected[k])] == []


def test_latest_with_no_intact_checkpoint_names_every_folder(run_copy, data_dir):
    _damage_weights(_ckpt(run_copy, 2))
    _remove_state(_ckpt(run_copy, 1))
    before = (run_copy / "run" / "train.csv").read_text()
    with pytest.raises(CheckpointError, match="no intact checkpoint") as info:
        pretrain(_config(run_copy, data_dir, resume="latest"))
    text = str(info.value)
    assert str(run_copy / "run" / "checkpoints") in text
    assert str(_ckpt(run_copy, 2) / "model.safetensors") in text
    assert str(_ckpt(run_copy, 1) / "train_state.pt") in text
    assert (run_copy / "run" / "train.csv").read_text() == before  # nothing was trained


@pytest.mark.parametrize("damage", ["missing train state", "truncated train state"])
def test_explicit_resume_names_the_bad_file(run_copy, data_dir, damage):
    apply, error, message = DAMAGES[damage]
    folder = _ckpt(run_copy, 1)
    file = folder / apply(folder)
    with pytest.raises(error, match=message) as info:
        pretrain(_config(run_copy / "other", data_dir, resume=str(folder)))
    assert str(file) in str(info.value)


def test_explicit_resume_of_a_missing_folder(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found"):
        pretrain(_config(tmp_path, data_dir, resume=str(tmp_path / "nowhere")))


def test_config_json_is_checked_as_a_model_config(run_copy):
    folder = _ckpt(run_copy, 1)
    (folder / "config.json").write_text(json.dumps({"vision_cfg": {}}))
    assert "needs vision_cfg and text_cfg" in checkpoint_problem(folder)
