"""The vision trunk as a downstream encoder: loading, architecture, feature maps, freezing, errors."""

from __future__ import annotations

import json

import pytest
import torch
from downstream_helpers import RESNET, SIZE, VIT, make_checkpoint

from sista_kit.downstream.encoder import EncoderSpec, build_trunk, read_checkpoint_spec
from sista_kit.downstream.features import MultiScaleEncoder


def _x(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def test_spec_parse() -> None:
    assert EncoderSpec.parse("sista_vit_tiny:64:1") == EncoderSpec("sista_vit_tiny", 64, 1)
    assert EncoderSpec.parse("sista_resnet18") == EncoderSpec("sista_resnet18", 64, 1)
    with pytest.raises(ValueError, match="model_name"):
        EncoderSpec.parse("a:1:2:3")


def test_checkpoint_weights_are_loaded(vit_ckpt, tmp_path) -> None:
    from safetensors.torch import load_file

    trunk, spec = build_trunk(vit_ckpt)
    assert spec == EncoderSpec(VIT, SIZE, 1)
    saved = load_file(str(vit_ckpt / "model.safetensors"))
    for k, v in trunk.state_dict().items():
        torch.testing.assert_close(v, saved[f"visual.trunk.{k}"], rtol=0, atol=0)
    # Changed weights change the features; the same weights give the same features.
    other = make_checkpoint(tmp_path / "other", VIT, seed=1, perturb=0.05)
    enc_a = MultiScaleEncoder(build_trunk(vit_ckpt)[0]).eval()
    enc_a2 = MultiScaleEncoder(build_trunk(vit_ckpt)[0]).eval()
    enc_b = MultiScaleEncoder(build_trunk(other)[0]).eval()
    with torch.no_grad():
        fa, fa2, fb = enc_a.pooled(_x()), enc_a2.pooled(_x()), enc_b.pooled(_x())
    torch.testing.assert_close(fa, fa2)
    assert (fa - fb).abs().max() > 1e-3


def test_random_init_and_random_like(vit_ckpt) -> None:
    with pytest.raises(ValueError, match="needs an architecture"):
        build_trunk("random")
    t1, s1 = build_trunk("random", "sista_vit_tiny:64:1")
    t2, s2 = build_trunk(f"random:{vit_ckpt}")
    assert s1 == s2 == read_checkpoint_spec(vit_ckpt)
    loaded, _ = build_trunk(vit_ckpt)
    k = "blocks.0.attn.qkv.weight"
    assert t2.state_dict()[k].shape == loaded.state_dict()[k].shape
    assert not torch.equal(t2.state_dict()[k], loaded.state_dict()[k])


def test_bad_checkpoints_fail_clearly(vit_ckpt, resnet_ckpt, tmp_path) -> None:
    from sista_kit.models.checkpoint import CheckpointError

    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_trunk(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        build_trunk(tmp_path / "empty")
    # A ResNet's weights under a ViT config: the error names the missing and unexpected keys.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((resnet_ckpt / "model.safetensors").read_bytes())
    (bad / "config.json").write_text((vit_ckpt / "config.json").read_text())
    with pytest.raises(CheckpointError) as err:
        build_trunk(bad)
    msg = str(err.value)
    assert "missing keys" in msg and "patch_embed.proj.weight" in msg
    assert "unexpected keys" in msg and "conv1.weight" in msg
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        read_checkpoint_spec(bad)
    (bad / "config.json").write_text(json.dumps({"vision_cfg": {}, "text_cfg": {}}))
    with pytest.raises(ValueError, match="timm"):
        build_trunk(bad)


def test_vit_pyramid_shapes() -> None:
    enc = MultiScaleEncoder(build_trunk("random", "sista_vit_tiny:64:1")[0])
    maps = enc(_x())
    assert enc.strides == [2, 4, 8, 16] and enc.out_channels == [192] * 4
    assert [tuple(m.shape) for m in maps] == [(2, 192, 64 // s, 64 // s) for s in enc.strides]
    enc4 = MultiScaleEncoder(build_trunk("random", "sista_vit_tiny:64:1")[0], out_indices=(0, 1, 2, 3))
    maps4 = enc4(_x())
    assert [m.shape[-1] for m in maps4] == [32, 16, 8, 4]
    with pytest.raises(ValueError, match="out of range"):
        MultiScaleEncoder(build_trunk("random", "sista_vit_tiny:64:1")[0], out_indices=(7,))
    with pytest.raises(ValueError, match="built for 64x64"):
        enc(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="channel"):
        enc(torch.zeros(1, 3, 64, 64))


def test_resnet_stages_shapes() -> None:
    enc = MultiScaleEncoder(build_trunk("random", f"{RESNET}:64:1")[0])
    maps = enc(_x())
    assert enc.strides == [4, 8, 16, 32] and enc.out_channels == [64, 128, 256, 512]
    assert [tuple(m.shape[1:]) for m in maps] == [
        (c, 64 // s, 64 // s) for c, s in zip(enc.out_channels, enc.strides, strict=True)
    ]
    assert enc.pooled(_x()).shape == (2, 512)


@pytest.mark.parametrize("arch", [f"{VIT}:64:1", f"{RESNET}:64:1"])
def test_frozen_really_freezes(arch: str) -> None:
    enc = MultiScaleEncoder(build_trunk("random", arch)[0], frozen=True)
    enc.train()
    assert not enc.trunk.training and all(not p.requires_grad for p in enc.trunk.parameters())
    before = {k: v.clone() for k, v in enc.trunk.state_dict().items()}
    params = [p for p in enc.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1) if params else None
    for _ in range(2):
        loss = sum(m.square().mean() for m in enc(_x()))
        if opt is None:  # ResNet: nothing trainable, nothing connected to the graph
            assert not loss.requires_grad
            continue
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in enc.trunk.state_dict().items():  # weights and BN running statistics unchanged
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)
    if enc.kind == "vit":  # the new pyramid layers do train
        assert params and all(p.grad is not None for p in params)
