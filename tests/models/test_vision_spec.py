"""One VisionSpec from model config to downstream backbone; one place that knows a trunk's family."""

from __future__ import annotations

import pytest
import torch

from sista_kit.models import VisionSpec, create_vision_trunk, trunk_family
from sista_kit.models.checkpoint import vision_spec
from sista_kit.models.configs import model_config
from sista_kit.models.spec import is_vit


def test_parse_every_form_gives_one_spec():
    spec = VisionSpec("sista_vit_tiny", 64, 1)
    forms = [
        "sista_vit_tiny:64:1",
        "sista_vit_tiny",  # the command line's defaults: 64 px, 1 channel
        {"model_name": "sista_vit_tiny", "image_size": 64, "in_chans": 1},
        ("sista_vit_tiny", "64", 1),
        spec,
    ]
    assert all(VisionSpec.parse(f) == spec for f in forms)
    assert VisionSpec.parse(str(spec)) == spec and str(spec) == "sista_vit_tiny:64:1"
    name, size, chans = spec
    assert (name, size, chans) == ("sista_vit_tiny", 64, 1) and spec.to_dict()["image_size"] == 64


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("a:1:2:3", "model_name"),
        (":64", "model_name"),
        ("sista_vit_tiny:x", "image_size must be an integer"),
        ("sista_vit_tiny:0", "image_size must be positive"),
        ({"model_name": "m"}, "lacks image_size, in_chans"),
        (("m", 1), r"\(model_name, image_size, in_chans\)"),
    ],
)
def test_parse_errors_name_the_problem(bad, match):
    with pytest.raises(ValueError, match=match):
        VisionSpec.parse(bad)


def test_from_config_and_vision_spec():
    cfg = model_config("sista-tiny-resnet", vision_cfg={"image_size": [96, 96]})
    spec = vision_spec(cfg)
    assert spec == VisionSpec.from_config(cfg) == VisionSpec("sista_resnet18", 96, 1)
    name, _, chans = vision_spec(model_config("sista-paper"))  # the benchmark unpacks it
    assert (name, chans) == ("sista_vit_base_patch16_224", 3)
    no_chans = {"vision_cfg": {"timm_model_name": "sista_vit_tiny", "image_size": 32}}
    assert VisionSpec.from_config(no_chans).in_chans == 1  # the architecture's own default
    with pytest.raises(ValueError, match="timm_model_name"):
        VisionSpec.from_config({"vision_cfg": {}})


def test_family_by_name_and_by_trunk():
    assert VisionSpec("sista_vit_tiny", 32, 1).family == "vit"
    assert VisionSpec("sista_resnet18", 32, 1).family == "resnet"
    assert trunk_family("vit_small_patch16_224") == "vit" and trunk_family("resnet50") == "resnet"
    vit, res = create_vision_trunk("sista_vit_tiny", 32, 1), create_vision_trunk("sista_resnet18", 32, 1)
    assert trunk_family(vit) == "vit" and trunk_family(res) == "resnet"
    assert is_vit(vit) and not is_vit(res) and not is_vit(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="Linear"):
        trunk_family(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="convnext_tiny"):
        trunk_family("convnext_tiny")


def test_downstream_uses_the_same_spec():
    from sista_kit.downstream.encoder import EncoderSpec, build_trunk

    assert EncoderSpec is VisionSpec
    trunk, spec = build_trunk("random", "sista_resnet18:48:1")
    assert spec == VisionSpec("sista_resnet18", 48, 1) and trunk.conv1.in_channels == 1


def test_encoder_geometry_matches_the_built_encoder():
    """prepare_config fits a config from the spec alone; the numbers equal the built encoder's."""
    from sista_kit.downstream.features import MultiScaleEncoder, encoder_geometry

    for arch, indices in (("sista_vit_tiny:64:1", None), ("sista_resnet18:64:1", [2, 3, 4])):
        built = MultiScaleEncoder(create_vision_trunk(*VisionSpec.parse(arch)), out_indices=indices)
        assert encoder_geometry(arch, indices) == (built.out_channels, built.strides)


@pytest.mark.parametrize(
    "name, width, heads, depth",
    [("sista_vit_tiny", 192, 3, 4), ("sista_vit_mini", 128, 2, 4), ("sista_vit_micro", 128, 2, 3)],
)
def test_small_vits_standardise_each_image(name, width, heads, depth):
    """The CPU ViTs see each image standardised: a per-image gain and offset change nothing."""
    import timm
    import torch

    import sista_kit.models.archs  # noqa: F401  (registers the architectures)

    trunk = timm.create_model(name, img_size=32, num_classes=0).eval()
    assert (trunk.embed_dim, trunk.blocks[0].attn.num_heads, len(trunk.blocks)) == (width, heads, depth)
    x = torch.rand(3, 1, 32, 32)
    gain = torch.tensor([0.5, 2.0, 7.0]).view(3, 1, 1, 1)
    torch.testing.assert_close(trunk(x), trunk(gain * x + 0.3), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(trunk(x), trunk(x.flip(-1)), atol=1e-4)


def test_micro_config_is_mini_with_fewer_layers():
    """``sista-micro``: the width-128 ViT at depth 3 and a one-layer text tower; nothing else differs."""
    from sista_kit.models.configs import model_config

    mini, micro = model_config("sista-mini"), model_config("sista-micro")
    assert micro["vision_cfg"]["timm_model_name"] == "sista_vit_micro"
    assert (
        mini["text_cfg"]["hf_config"]["num_hidden_layers"],
        micro["text_cfg"]["hf_config"]["num_hidden_layers"],
    ) == (2, 1)
    for cfg in (mini, micro):
        cfg["vision_cfg"].pop("timm_model_name")
        cfg["text_cfg"]["hf_config"].pop("num_hidden_layers")
    assert micro == mini
