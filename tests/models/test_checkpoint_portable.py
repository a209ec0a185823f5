"""Checkpoints travel: loading needs only the folder, broken files are named; building a model writes
nothing under the home folder, and a configured cache folder must be private."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from sista_kit.models import CheckpointError, TextBatch, build_model, load_checkpoint, load_vision_trunk
from sista_kit.models import configs as configs_mod
from sista_kit.models.checkpoint import save_checkpoint
from sista_kit.models.configs import cache_dir, model_config, set_cache_dir


def _cfg() -> dict:
    cfg = model_config("sista-tiny", vision_cfg={"image_size": 32})
    cfg["text_cfg"]["hf_config"].update(vocab_size=64)
    return cfg


def _outputs(model) -> dict:
    ids = torch.tensor([[2, 10, 11, 3, 0]])
    texts = TextBatch(ids, (ids != 0).long(), torch.tensor([[-1, 0, 1, -1, -1]]))
    with torch.no_grad():
        return model.eval()(torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)), texts)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(_cfg())
    return model, save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "run", model.config)


def test_load_needs_no_initial_weights(tmp_path):
    """Trained from local initial weights (vision file, pretrained text folder) that are gone later."""
    from transformers import BertConfig, BertModel

    hf = dict(_cfg()["text_cfg"]["hf_config"])
    text_dir = tmp_path / "init" / "bert"
    BertModel(BertConfig(**{k: v for k, v in hf.items() if k != "model_type"})).save_pretrained(text_dir)
    torch.manual_seed(1)
    vision_file = tmp_path / "init" / "trunk.pt"
    donor = build_model(_cfg())
    torch.save(donor.visual.trunk.state_dict(), vision_file)

    cfg = _cfg()
    cfg["vision_cfg"]["pretrained_path"] = str(vision_file)
    cfg["text_cfg"].update(hf_config=None, hf_model_name=str(text_dir), pretrained=True)
    model = build_model(cfg)
    torch.testing.assert_close(model.visual.trunk.pos_embed, donor.visual.trunk.pos_embed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # "training": the checkpoint differs from the initial weights
    path = save_checkpoint(model, tmp_path / "ckpt", model.config)
    shutil.rmtree(tmp_path / "init")

    loaded = load_checkpoint(path)
    expected, got = _outputs(model), _outputs(loaded)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])
    trunk, info = load_vision_trunk(path)
    torch.testing.assert_close(trunk.pos_embed, model.visual.trunk.pos_embed)


def test_invalid_config_names_the_file(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    (bad / "config.json").write_text("{not json")
    for load in (load_checkpoint, load_vision_trunk):
        with pytest.raises(CheckpointError, match=r"bad/config\.json is not valid JSON"):
            load(bad)
    (bad / "config.json").write_text(json.dumps({"embed_dim": 8}))
    with pytest.raises(CheckpointError, match=r"config\.json is not a sista_kit model config"):
        load_checkpoint(bad)


def test_truncated_weights_name_the_file(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "cut"
    shutil.copytree(path, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    for load in (load_checkpoint, load_vision_trunk):
        with pytest.raises(CheckpointError, match=r"cut/model\.safetensors is not a readable safetensors"):
            load(bad)


@pytest.fixture
def no_configured_cache(monkeypatch):
    monkeypatch.delenv(configs_mod.CACHE_ENV, raising=False)
    set_cache_dir(None)
    yield
    set_cache_dir(None)


def test_building_writes_nothing_under_home(tmp_path, monkeypatch, no_configured_cache):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    build_model(_cfg())
    assert list(home.iterdir()) == []
    private = cache_dir()
    assert private.is_dir() and not private.is_relative_to(home)
    assert (private.stat().st_mode & 0o777) == 0o700 and private.stat().st_uid == os.getuid()


def test_configured_cache(tmp_path, monkeypatch, no_configured_cache):
    monkeypatch.setenv(configs_mod.CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env" / "model_configs"
    set_cache_dir(tmp_path / "explicit")  # the call wins over the environment
    build_model(_cfg())
    assert any((tmp_path / "explicit" / "model_configs").glob("*.json"))
    shared = tmp_path / "shared"
    (shared / "model_configs").mkdir(parents=True)
    (shared / "model_configs").chmod(0o777)
    set_cache_dir(shared)
    with pytest.raises(PermissionError, match=r"shared/model_configs is writable by group or others"):
        cache_dir()
