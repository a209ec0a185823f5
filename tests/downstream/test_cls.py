"""Classification transfer: linear probe and fine-tuning, multi-label AUROC and multi-class accuracy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from downstream_helpers import SIZE

from sista_kit.downstream.cls import ClsSplit, run_cls, score


def _blobs(n: int, seed: int, multilabel: bool) -> ClsSplit:
    """Images with a bright square in some quadrants; the label is which quadrants hold one."""
    g = np.random.default_rng(seed)
    present = g.random((n, 4)) < 0.4
    if not multilabel:
        present = np.eye(4, dtype=bool)[g.integers(0, 4, n)]
    img = g.integers(0, 60, (n, 1, SIZE, SIZE)).astype(np.uint8)
    h = SIZE // 2
    for q in range(4):
        r, c = divmod(q, 2)
        img[present[:, q], :, r * h + 8 : r * h + 24, c * h + 8 : c * h + 24] = 220
    labels = present.astype(np.float32) if multilabel else present.argmax(1)
    return ClsSplit([f"{seed}_{i}" for i in range(n)], torch.from_numpy(img), labels)


def test_score() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.float32)
    assert score(y * 2 - 1, y)["auroc"] == pytest.approx(100.0)
    assert score(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 1]))["accuracy"] == 100.0
    with pytest.raises(ValueError, match="non-finite"):
        score(np.array([[np.nan]]), np.array([[1.0]]))


@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_multilabel_and_multiclass_in_memory(protocol: str, tmp_path) -> None:
    for multilabel in (True, False):
        train = _blobs(48, 0, multilabel)
        splits = {"train": train, "test": _blobs(32, 1, multilabel)}
        iters = 60 if protocol == "linear" else 4  # fine-tuning steps cost the whole tower
        m = run_cls(
            "random",
            splits=splits,
            arch="sista_resnet18:64:1",
            protocol=protocol,
            iters=iters,
            batch_size=8,
            out=tmp_path / f"{protocol}{multilabel}",
            progress=False,
        )
        key = "auroc" if multilabel else "accuracy"
        assert math.isfinite(m[key])
        if protocol == "linear":  # the probe does learn: it fits its own training set (512-d features)
            fit = run_cls(
                "random",
                splits={"train": train, "test": train},
                arch="sista_resnet18:64:1",
                iters=300,
                progress=False,
            )
            assert fit[key] > 90, fit
        rec = json.loads((tmp_path / f"{protocol}{multilabel}" / "metrics.json").read_text())
        assert rec["n_train"] == 48 and rec["protocol"] == protocol
        assert (tmp_path / f"{protocol}{multilabel}" / "classifier.safetensors").is_file()


def test_export_random_and_pretrained(tiny_export, vit_ckpt, tmp_path) -> None:
    kw = dict(data_root=tiny_export, iters=30, progress=False, fraction=0.5, seed=1)
    a = run_cls("random", arch="sista_vit_tiny:64:1", out=tmp_path / "rand", **kw)
    b = run_cls(vit_ckpt, out=tmp_path / "ckpt", **kw)
    for m in (a, b):
        assert math.isfinite(m["auroc"]) and 0 <= m["auroc"] <= 100
    rec = json.loads((tmp_path / "ckpt" / "metrics.json").read_text())
    assert rec["n_train"] == 15 and rec["fraction"] == 0.5  # round(0.5 * 30)
    assert rec["checkpoint"] == str(vit_ckpt)


def test_linear_probe_does_not_touch_encoder(vit_ckpt) -> None:
    from sista_kit.downstream.cls import extract_features
    from sista_kit.downstream.encoder import build_trunk
    from sista_kit.downstream.features import MultiScaleEncoder

    enc = MultiScaleEncoder(build_trunk(vit_ckpt)[0], frozen=True)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    imgs = _blobs(8, 0, True).images
    f1 = extract_features(enc, imgs, SIZE)
    f2 = extract_features(enc, imgs, SIZE)
    torch.testing.assert_close(f1, f2)
    assert all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())


def test_cls_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="protocol"):
        run_cls("random", splits={}, protocol="svm")
    with pytest.raises(ValueError, match="exactly one"):
        run_cls("random")
    with pytest.raises(FileNotFoundError):
        run_cls(tmp_path / "missing", splits={"train": _blobs(4, 0, True), "test": _blobs(4, 1, True)})
