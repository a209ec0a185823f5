"""Fast checks of the training parts: command line, sampler, CSV logger, RNG state, checkpoint listing."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from sista_kit.train.cli import config_from_args
from sista_kit.train.config import PretrainConfig
from sista_kit.train.data import ContiguousDistributedSampler
from sista_kit.train.logs import RunLogger, read_csv
from sista_kit.train.state import latest_checkpoint, rng_state, set_rng_state


def test_cli_precedence_and_loss_kwargs(tmp_path):
    file = tmp_path / "run.json"
    file.write_text(json.dumps({"loss": "sia", "batch_size": 16, "loss_kwargs": {"threshold": 0.8}}))
    cfg, _ = config_from_args(
        [
            "--config",
            str(file),
            "--batch-size",
            "4",
            "--loss-kw",
            "strategy=positive",
            "--loss-kw",
            "threshold=0.95",
            "--no-progress",
        ]
    )
    assert cfg.loss == "sia" and cfg.batch_size == 4 and cfg.progress is False
    assert cfg.loss_kwargs == {"threshold": 0.95, "strategy": "positive"}


def test_cli_rejects_bad_values(capsys):
    with pytest.raises(SystemExit):
        config_from_args(["--batch-size", "0"])
    assert "batch_size=0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown pretraining config keys: bogus"):
        PretrainConfig.from_dict({"bogus": 1})


def test_contiguous_sampler_splits_global_batches():
    data = list(range(37))
    single = list(ContiguousDistributedSampler(data, 8, 1, 0, seed=3))
    ranks = [list(ContiguousDistributedSampler(data, 4, 2, r, seed=3)) for r in range(2)]
    assert len(single) == 32 and all(len(r) == 16 for r in ranks)
    for step in range(4):
        assert (
            ranks[0][4 * step : 4 * step + 4] + ranks[1][4 * step : 4 * step + 4]
            == single[8 * step : 8 * step + 8]
        )
    sampler = ContiguousDistributedSampler(data, 8, 1, 0, seed=3)
    sampler.set_epoch(1)
    assert list(sampler) != single
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        ContiguousDistributedSampler(list(range(5)), 4, 2, 0)


def test_run_logger_writes_csv(tmp_path):
    log = RunLogger(tmp_path)
    log.add_scalar("train/loss", torch.tensor(2.0), 0)
    log.add_scalar("train/lr", 0.1, 0)
    log.add_scalar("train/loss", 1.5, 1)
    log.add_scalar("train/token_align_loss", 0.5, 1)  # a column that appears later
    log.add_scalar("val/image_to_text_R@1", 0.25, 1)
    log.close()
    rows = read_csv(tmp_path / "train.csv")
    assert rows == [
        {"step": 0, "loss": 2.0, "lr": 0.1, "token_align_loss": None},
        {"step": 1, "loss": 1.5, "lr": None, "token_align_loss": 0.5},
    ]
    assert read_csv(tmp_path / "val.csv") == [{"epoch": 1, "image_to_text_R@1": 0.25}]


def test_rng_state_round_trip(tmp_path):
    state = rng_state()
    torch.save(state, tmp_path / "s.pt")
    draws = (random.random(), float(np.random.rand()), float(torch.rand(())))  # noqa: NPY002
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == draws  # noqa: NPY002


def test_latest_checkpoint_ignores_incomplete(tmp_path):
    for n in (1, 2, 10):
        (tmp_path / f"epoch_{n}").mkdir()
        (tmp_path / f"epoch_{n}" / "model.safetensors").write_bytes(b"")
    (tmp_path / ".epoch_11.tmp-1234").mkdir()
    (tmp_path / "epoch_12").mkdir()  # no model file
    assert latest_checkpoint(tmp_path) == tmp_path / "epoch_10"
    assert latest_checkpoint(tmp_path / "missing") is None


def test_prepare_dataset_folder_checks_and_names(tmp_path):
    from sista_kit.data.folder import synthetic_folder_name
    from sista_kit.train.data import prepare_dataset_folder

    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "manifest.jsonl").write_text("")  # no meta.json: an interrupted write
    with pytest.raises(
        FileNotFoundError, match=r"--data .*half is not a complete dataset folder \(no meta.json\)"
    ):
        prepare_dataset_folder(str(tmp_path / "half"), None, str(tmp_path), 8, 0, 32, is_master=True)
    calls = []
    folder = prepare_dataset_folder(
        "synthetic", None, str(tmp_path), 8, 3, 32, is_master=False, barrier=lambda: calls.append(1)
    )
    assert (
        folder
        == tmp_path / "_data" / synthetic_folder_name(8, 3, 32)
        == tmp_path / "_data" / "synthetic-n8-s3-32"
    )
    assert calls == [1] and not folder.exists()  # only the master writes; every rank waits


def test_attention_backend_is_the_math_path_for_cpu_bfloat16_only():
    from sista_kit.train.pretrain import attention_backend

    cpu = torch.device("cpu")
    assert torch.backends.cuda.flash_sdp_enabled()
    with attention_backend(cpu, "amp_bf16"):
        assert not torch.backends.cuda.flash_sdp_enabled()
        assert torch.backends.cuda.math_sdp_enabled()
        q = torch.randn(2, 3, 5, 8, dtype=torch.bfloat16)
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
        assert torch.isfinite(out).all()
    assert torch.backends.cuda.flash_sdp_enabled()  # restored
    with attention_backend(cpu, "fp32"):
        assert torch.backends.cuda.flash_sdp_enabled()
    with attention_backend(torch.device("cuda"), "amp_bf16"):
        assert torch.backends.cuda.flash_sdp_enabled()
