"""Localisation transfer: cell targets, the logistic probe, patch-level AP, a run on a disk export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from downstream_helpers import SIZE, VIT

from sista_kit.downstream.patch_probe import (
    L2_GRID,
    LocSplit,
    fit_logistic,
    load_loc_split,
    patch_targets,
    run_loc,
    score_patches,
)


def test_patch_targets_mark_the_cells_a_mask_touches() -> None:
    masks = torch.zeros(2, 3, 16, 24, dtype=torch.bool)
    masks[0, 1, 9, 17] = True  # one pixel: row cell 1 (8-15), column cell 2 (16-23)
    masks[1, 2] = True  # everywhere
    y = patch_targets(masks, (2, 3))
    assert y.shape == (2 * 6, 3)
    first = y[:6].reshape(2, 3, 3)
    assert first[..., 1].nonzero().tolist() == [[1, 2]] and first[..., [0, 2]].sum() == 0
    assert y[6:, 2].all() and y[6:, :2].sum() == 0


def test_fit_logistic_separates_and_folds_the_standardisation() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g) * torch.tensor([1.0, 50.0, 0.1, 3.0, 1.0]) + 7.0
    y = torch.stack([(x[:, 1] > 7.0), (x[:, 2] < 7.0)], 1).float()
    head = fit_logistic(x, y, l2=1e-6, max_iter=200)
    with torch.no_grad():
        scores = head(x).numpy()
    metrics = score_patches(scores, y.numpy(), ["a", "b"])
    assert metrics["patch_ap_a"] > 99.0 and metrics["patch_ap_b"] > 99.0
    # a larger weight decay shrinks the weights (the penalty is applied)
    assert head.weight.norm() > fit_logistic(x, y, l2=1e-1, max_iter=200).weight.norm()
    with pytest.raises(ValueError, match="one target row per feature row"):
        fit_logistic(x, y[:10], l2=0.0)


def test_fit_logistic_warm_start_reaches_the_same_optimum(monkeypatch) -> None:
    """A fit started from another L2's (folded) solution converges to the cold fit's optimum, in fewer
    loss evaluations."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 4, generator=g) * torch.tensor([2.0, 0.5, 10.0, 1.0]) + 3.0
    noisy = x[:, :2].sum(1) + 2.0 * torch.randn(300, generator=g)
    y = torch.stack([noisy > 3.0, x[:, 2] + 5.0 * torch.randn(300, generator=g) > 3.0], 1).float()
    calls, real = [0], F.binary_cross_entropy_with_logits

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "binary_cross_entropy_with_logits", counted)

    def fit(**kw) -> tuple[torch.nn.Linear, int]:
        calls[0] = 0
        return fit_logistic(x, y, max_iter=500, **kw), calls[0]

    strong, _ = fit(l2=1e-2)
    cold, cold_calls = fit(l2=1e-3)
    warm, warm_calls = fit(l2=1e-3, warm_start=strong)
    torch.testing.assert_close(warm.weight, cold.weight, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(warm.bias, cold.bias, atol=1e-3, rtol=1e-3)
    assert warm_calls < cold_calls
    with pytest.raises(ValueError, match="warm_start maps"):
        fit_logistic(x, y[:, :1], l2=1e-3, warm_start=strong)


def test_score_patches_chance_and_errors() -> None:
    y = np.zeros((100, 2), dtype=np.float32)
    y[:10, 0] = 1
    y[:30, 1] = 1
    const = score_patches(np.zeros((100, 2)), y, ["a", "b"])
    assert const["patch_ap_a"] == pytest.approx(10.0) and const["patch_ap_b"] == pytest.approx(30.0)
    assert const["patch_mAP"] == pytest.approx(const["patch_mAP_chance"]) == pytest.approx(20.0)
    assert score_patches(y * 5.0, y, ["a", "b"])["patch_mAP"] == pytest.approx(100.0)
    y[:, 1] = 0  # a finding absent from every test cell is left out, not scored 0
    assert score_patches(y * 5.0, y, ["a", "b"])["patch_classes"] == 1.0
    with pytest.raises(ValueError, match="non-finite"):
        score_patches(np.full((100, 2), np.nan), y, ["a", "b"])
    with pytest.raises(ValueError, match="no finding is present"):
        score_patches(np.zeros((100, 2)), np.zeros((100, 2)), ["a", "b"])


def test_loc_split_checks_shapes() -> None:
    with pytest.raises(ValueError, match="one N"):
        LocSplit(["a"], torch.zeros(1, 1, 8, 8), torch.zeros(2, 3, 8, 8), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="differ in size"):
        LocSplit(["a"], torch.zeros(1, 1, 8, 8), torch.zeros(1, 3, 4, 4), np.zeros((1, 3)))


def test_run_loc_on_a_disk_export(tiny_export, vit_ckpt, resnet_ckpt, tmp_path) -> None:
    split = load_loc_split(str(tiny_export), "train")
    assert split.masks.shape[1:] == (7, SIZE, SIZE) and split.images.shape[1:] == (1, SIZE, SIZE)
    # every finding a study is labelled with has mask pixels in it
    labelled = split.labels > 0
    assert (split.masks.flatten(2).any(2).numpy()[labelled]).all()
    metrics = run_loc(vit_ckpt, data_root=tiny_export, out=tmp_path, fraction=0.5, seed=1, progress=False)
    assert 0.0 < metrics["patch_mAP_chance"] < metrics["patch_mAP"] <= 100.0
    assert metrics["patch_l2"] in L2_GRID and 0.0 <= metrics["patch_mAP_val"] <= 100.0
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["task"] == "loc" and record["grid"] == [SIZE // 8, SIZE // 8]
    assert record["n_pos"] >= min(2, int(labelled.sum(0).min())) and record["n_train"] <= 30
    # a ResNet trunk is read at its stride-16 stage; another encoder gives another score
    resnet = run_loc(
        resnet_ckpt, data_root=tiny_export, out=tmp_path / "r", fraction=0.5, seed=1, progress=False
    )
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["grid"] == [SIZE // 16, SIZE // 16]
    assert resnet["patch_mAP"] != metrics["patch_mAP"]


def test_run_loc_needs_masks(tiny_export, tmp_path) -> None:
    import shutil

    root = tmp_path / "nomask"
    shutil.copytree(tiny_export, root)
    manifest = root / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for row in rows:
        row.pop("findings_mask")
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="findings_mask"):
        run_loc("random", arch=f"{VIT}:{SIZE}:1", data_root=root, progress=False)
    with pytest.raises(ValueError, match="l2_grid is empty"):
        run_loc("random", arch=f"{VIT}:{SIZE}:1", data_root=tiny_export, l2_grid=(), progress=False)


def test_cli_loc(tiny_export, tmp_path, capsys) -> None:
    from sista_kit.downstream.cli import main

    argv = ["loc", "--checkpoint", "random", "--arch", f"{VIT}:{SIZE}:1", "--data-root", str(tiny_export)]
    argv += ["--out", str(tmp_path / "cli"), "--iters", "30", "--l2", "1e-4", "--no-progress"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["patch_l2"] == 1e-4 and "patch_mAP_val" not in printed  # one weight: nothing to choose
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["metrics"][
        "patch_mAP"
    ] == pytest.approx(printed["patch_mAP"])
    with pytest.raises(SystemExit):
        main([*argv[:-4], "--l2", "abc"])
