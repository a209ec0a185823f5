"""Vision trunks and checkpoints: registration, round trip, trunk loading, wrong shapes, atomic writes."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from sista_kit.models import (
    CheckpointError,
    TextBatch,
    build_model,
    create_vision_trunk,
    load_checkpoint,
    load_vision_trunk,
    save_checkpoint,
)
from sista_kit.models import checkpoint as ckpt_mod
from sista_kit.models.configs import model_config


def _cfg(name: str = "sista-tiny", image_size: int = 32) -> dict:
    cfg = model_config(name)
    cfg["vision_cfg"]["image_size"] = image_size
    cfg["text_cfg"]["hf_config"].update(vocab_size=64)
    return cfg


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(_cfg()).eval()
    path = save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "run", model.config)
    return model, path


def test_registered_trunks():
    vit = timm.create_model("sista_vit_tiny")
    assert vit.patch_embed.proj.in_channels == 1 and vit.patch_embed.img_size == (128, 128)
    assert len(vit.blocks) == 4 and vit.embed_dim == 192
    res = timm.create_model("sista_resnet18", num_classes=0)
    assert res.conv1.in_channels == 1 and res.num_features == 512
    base = create_vision_trunk("sista_vit_base_patch16_224", 224, 3)
    assert base.embed_dim == 768 and base.patch_embed.patch_size == (16, 16) and base.num_classes == 0
    with pytest.raises(ValueError, match="no hub weights"):
        timm.create_model("sista_vit_tiny", pretrained=True)


def test_create_vision_trunk_sizes():
    trunk = create_vision_trunk("sista_vit_tiny", 64, 3)
    assert trunk.patch_embed.proj.in_channels == 3
    assert trunk.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 1 + 64, 192)
    with pytest.raises(ValueError, match="positive"):
        create_vision_trunk("sista_vit_tiny", 0, 1)


def test_checkpoint_round_trip(saved):
    model, path = saved
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    loaded = load_checkpoint(path).eval()
    ids = torch.tensor([[2, 10, 11, 3, 0]])
    texts = TextBatch(ids, (ids != 0).long(), torch.tensor([[-1, 0, 1, -1, -1]]))
    image = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        a, b = model(image, texts), loaded(image, texts)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_load_vision_trunk(saved):
    model, path = saved
    trunk, info = load_vision_trunk(path)
    assert info == {
        "arch": "vit",
        "model_name": "sista_vit_tiny",
        "image_size": 32,
        "in_chans": 1,
        "patch_size": 8,
        "width": 192,
    }
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(trunk.forward_features(x), model.visual.trunk.forward_features(x))


def test_load_vision_trunk_resnet(tmp_path):
    model = build_model(_cfg("sista-tiny-resnet", 64))
    path = save_checkpoint(model, tmp_path / "res", model.config)
    trunk, info = load_vision_trunk(path)
    assert info["arch"] == "resnet" and info["width"] == 512 and info["patch_size"] == 32
    torch.testing.assert_close(trunk.conv1.weight, model.visual.trunk.conv1.weight)


def test_wrong_shapes_name_the_keys(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    config = json.loads((path / "config.json").read_text())
    config["embed_dim"] = 64
    config["vision_cfg"]["image_size"] = 64
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    msg = str(err.value)
    assert "visual.head.proj.weight" in msg and "text.proj.weight" in msg and "visual.trunk.pos_embed" in msg
    with pytest.raises(
        CheckpointError, match=r"pos_embed: checkpoint \(1, 17, 192\) vs model \(1, 65, 192\)"
    ):
        load_vision_trunk(bad)


def test_missing_checkpoint_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a sista_kit checkpoint"):
        load_vision_trunk(tmp_path)


def test_interrupted_write_keeps_previous(saved, tmp_path, monkeypatch):
    model, _ = saved
    target = save_checkpoint(model, tmp_path / "latest", model.config)
    before = (target / "model.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt("interrupted")

    monkeypatch.setattr(ckpt_mod, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, target, model.config)
    assert (target / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]  # no temporary folder left behind


def test_train_state_is_weights_only(saved, tmp_path):
    model, _ = saved
    state = {
        "epoch": 3,
        "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}},
        "rng": [torch.get_rng_state()],
    }
    path = save_checkpoint(
        model, tmp_path / "s", model.config, train_state=state, extra_files={"a/b.txt": "x"}
    )
    loaded = ckpt_mod.load_train_state(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], torch.ones(2))
    assert (path / "a" / "b.txt").read_text() == "x"
