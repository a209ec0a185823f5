"""Localisation transfer: a linear probe on the frozen encoder's patch grid (which cells hold which finding).

Every cell of the encoder's finest grid (the ViT's patch tokens; a ResNet's stride-16 stage) is a
multi-label sample: its targets are the findings whose mask touches the cell. A logistic regression per
finding (one linear layer, full-batch L-BFGS on standardised features, as in CLIP's linear-probe
protocol) is fitted on the cells of the label subset, its L2 weight chosen on the validation split from
:data:`L2_GRID`, and scored on the test split by average precision per finding over all test cells
(``patch_mAP``: the macro mean, in %; ``patch_ap_<finding>``: each finding; ``patch_mAP_chance``: the
mean prevalence, what a constant score reaches). A linear read-out of each cell measures what the
encoder's own features localise, where a trained FPN head can rebuild it from the raw intensities that
even a random patch embedding keeps.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sista_kit.data.folder import read_manifest, read_meta, sample_from_row

from .cls import normalise
from .encoder import RANDOM, build_trunk
from .features import MultiScaleEncoder
from .fractions import id_positions, select_fraction, subset_counts
from .results import write_metrics

__all__ = [
    "L2_GRID",
    "LocSplit",
    "load_loc_split",
    "patch_targets",
    "grid_features",
    "fit_logistic",
    "score_patches",
    "run_loc",
]

#: L2 weights (on the mean BCE) the probe chooses from on the validation split; without one, the first.
#: On the default profile's validation split (never test) the weakest of (1e-6, 1e-5, 1e-4) won 74 of 81
#: runs and 1e-7 won again where tried, so the grid ends at no penalty (each fit stops at ``max_iter``).
L2_GRID = (1e-6, 1e-5, 1e-4, 0.0)


class LocSplit:
    """One split: ids, images uint8 (N, 1, H, W), per-finding masks bool (N, K, H, W), labels (N, K)."""

    def __init__(self, ids: list[str], images: torch.Tensor, masks: torch.Tensor, labels: np.ndarray) -> None:
        n = images.shape[0]
        if images.dim() != 4 or masks.dim() != 4 or masks.shape[0] != n or len(ids) != n:
            raise ValueError(
                f"need images (N, C, H, W) and masks (N, K, H, W) of one N; got {tuple(images.shape)}, "
                f"{tuple(masks.shape)} and {len(ids)} ids"
            )
        if masks.shape[-2:] != images.shape[-2:]:
            raise ValueError(
                f"masks {tuple(masks.shape[-2:])} and images {tuple(images.shape[-2:])} differ in size"
            )
        self.ids, self.images, self.masks, self.labels = ids, images, masks, labels

    def subset(self, keep: list[str]) -> LocSplit:
        idx = id_positions(self.ids, keep)
        return LocSplit([self.ids[i] for i in idx], self.images[idx], self.masks[idx], self.labels[idx])


@cache
def _has_split(root: str, split: str) -> bool:
    return bool(read_manifest(root, split))


@cache
def load_loc_split(root: str, split: str) -> LocSplit:
    """Images, per-finding masks and labels of one split of a dataset folder (cached per process)."""
    rows = read_manifest(root, split)
    if not rows:
        raise ValueError(f"{root} has no {split!r} studies for the localisation probe")
    missing = [r["id"] for r in rows if not r.get("findings_mask")]
    if missing:
        raise ValueError(
            f"the localisation probe needs per-finding masks ('findings_mask' in {root}/manifest.jsonl); "
            f"{len(missing)} {split} studies have none, e.g. {missing[:3]}"
        )
    k = len(rows[0]["labels"])
    samples = [sample_from_row(root, r) for r in rows]
    images = np.stack([s.image for s in samples])
    masks = np.stack([s.masks[:k] for s in samples])
    labels = np.asarray([r["labels"] for r in rows], dtype=np.float32)
    return LocSplit(
        [str(r["id"]) for r in rows], torch.from_numpy(images)[:, None], torch.from_numpy(masks), labels
    )


def patch_targets(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(N * h * w, K) 0/1 targets of the grid cells: a finding is present in a cell its mask touches."""
    cells = F.adaptive_max_pool2d(masks.float(), grid)  # (N, K, h, w)
    return cells.flatten(2).transpose(1, 2).reshape(-1, masks.shape[1])


def _grid_encoder(trunk: torch.nn.Module) -> MultiScaleEncoder:
    from sista_kit.models.spec import trunk_family

    vit = trunk_family(trunk) == "vit"
    return MultiScaleEncoder(trunk, out_indices=None if vit else [3], scales=(1.0,), frozen=True)


@torch.no_grad()
def grid_features(
    encoder: MultiScaleEncoder, images: torch.Tensor, size: int, batch_size: int = 64, device: str = "cpu"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Frozen grid features (N * h * w, D) of ``images`` in eval mode, and the grid (h, w)."""
    encoder.eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = normalise(images[start : start + batch_size], size).to(device)
        out.append(encoder(x)[0].float().cpu())
    maps = torch.cat(out)  # (N, D, h, w)
    return maps.flatten(2).transpose(1, 2).reshape(-1, maps.shape[1]), (maps.shape[2], maps.shape[3])


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    l2: float,
    max_iter: int = 500,
    warm_start: torch.nn.Linear | None = None,
) -> torch.nn.Linear:
    """Multi-label logistic regression on ``x`` (N, D) -> ``y`` (N, K) 0/1: mean BCE + ``l2`` x |W|^2,
    full-batch L-BFGS (strong Wolfe) on standardised features; the standardisation is folded into the
    returned layer (CPU, float32). ``warm_start``: a layer this function returned for the same ``x`` and
    ``y`` (e.g. at a larger ``l2``), the starting point instead of a random one."""
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"need one target row per feature row, got {tuple(x.shape)} and {tuple(y.shape)}")
    x = x.float()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z, target = (x - mean) / std, y.float()
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], y.shape[1])
    if warm_start is not None:
        if warm_start.weight.shape != head.weight.shape:
            raise ValueError(
                f"warm_start maps {tuple(warm_start.weight.shape)}, need {tuple(head.weight.shape)}"
            )
        with torch.no_grad():  # unfold: W x + b = (W s) z + (b + W m)
            head.weight.copy_(warm_start.weight * std)
            head.bias.copy_(warm_start.bias + (warm_start.weight * mean).sum(1))
    opt = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(head(z), target) + l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():  # W (x - m) / s + b
        w = head.weight / std
        head.bias -= (w * mean).sum(1)
        head.weight.copy_(w)
    return head


def score_patches(scores: np.ndarray, targets: np.ndarray, names: list[str]) -> dict[str, float]:
    """Average precision per finding over all cells (%), its macro mean and the chance level."""
    from sklearn.metrics import average_precision_score

    if not np.isfinite(scores).all():
        raise ValueError("the localisation probe produced non-finite scores")
    out: dict[str, float] = {}
    for k, name in enumerate(names):
        if targets[:, k].any():
            out[f"patch_ap_{name}"] = 100.0 * float(average_precision_score(targets[:, k], scores[:, k]))
            out[f"patch_prevalence_{name}"] = 100.0 * float(targets[:, k].mean())
    if not out:
        raise ValueError("no finding is present in any test cell: nothing to localise")
    aps = [v for key, v in out.items() if key.startswith("patch_ap_")]
    out["patch_mAP"] = float(np.mean(aps))
    out["patch_mAP_chance"] = float(np.mean([v for key, v in out.items() if key.startswith("patch_prev")]))
    out["patch_classes"] = float(len(aps))
    return out


def run_loc(
    checkpoint: str | Path = RANDOM,
    *,
    data_root: str | Path,
    out: str | Path | None = None,
    fraction: float = 1.0,
    seed: int = 0,
    arch: str | None = None,
    max_iter: int = 500,
    l2_grid: tuple[float, ...] = L2_GRID,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, float]:
    """Localisation transfer of a checkpoint; returns test metrics (``patch_mAP`` etc., in %) and writes
    ``out/metrics.json``.

    Args:
        checkpoint: sista_kit checkpoint folder, ``"random"`` (needs ``arch``) or ``"random:DIR"``.
        data_root: a dataset folder with per-finding masks (``findings_mask`` in its manifest).
        fraction, seed: label fraction of the training split (stratified by finding, at least 2 positive
            studies of every finding) and its seed (also seeds the probe).
        max_iter: L-BFGS iterations of each fit.
        l2_grid: L2 weights tried; the one with the best validation ``patch_mAP`` is kept (the first
            one without a validation split).
    """
    if not l2_grid:
        raise ValueError("l2_grid is empty: give at least one L2 weight")
    t0 = time.perf_counter()
    root = str(Path(data_root))
    names = list(read_meta(root).get("class_names") or [])
    pool, test = load_loc_split(root, "train"), load_loc_split(root, "test")
    names = names or [f"class{k}" for k in range(pool.masks.shape[1])]
    train = pool.subset(select_fraction(pool.ids, fraction, seed, labels=pool.labels))
    torch.manual_seed(seed)
    trunk, spec = build_trunk(checkpoint, arch)
    encoder = _grid_encoder(trunk).to(device)
    bar = tqdm(total=2, desc="grid features", disable=not progress, leave=False)
    train_x, grid = grid_features(encoder, train.images, spec.image_size, device=device)
    bar.update()
    test_x, _ = grid_features(encoder, test.images, spec.image_size, device=device)
    bar.close()
    train_y = patch_targets(train.masks, grid)
    l2, val_map, head = _choose_l2(
        encoder, spec.image_size, root, grid, train_x, train_y, names, l2_grid, max_iter, device
    )
    with torch.no_grad():
        scores = head(test_x).numpy()
    metrics = score_patches(scores, patch_targets(test.masks, grid).numpy(), names)
    metrics.update(patch_l2=float(l2), **({} if val_map is None else {"patch_mAP_val": val_map}))
    if out is not None:
        write_metrics(
            out,
            {
                "task": "loc",
                "checkpoint": str(checkpoint),
                "arch": spec.model_name,
                "image_size": spec.image_size,
                "grid": list(grid),
                "fraction": float(fraction),
                "seed": int(seed),
                "max_iter": int(max_iter),
                **subset_counts(train.labels),
                "n_test": len(test.ids),
                "metrics": metrics,
                "wall_s": round(time.perf_counter() - t0, 2),
            },
        )
    return metrics


def _choose_l2(encoder, size, root, grid, train_x, train_y, names, l2_grid, max_iter, device):
    """The grid's L2 weight with the best validation ``patch_mAP``, that mAP and the probe fitted with it;
    the first weight, None and its probe when the folder has no validation studies. The weights are
    fitted from the strongest to the weakest, each fit starting from the previous one's solution."""
    if len(l2_grid) == 1 or not _has_split(root, "val"):
        return float(l2_grid[0]), None, fit_logistic(train_x, train_y, l2_grid[0], max_iter)
    val = load_loc_split(root, "val")
    val_x, _ = grid_features(encoder, val.images, size, device=device)
    val_y = patch_targets(val.masks, grid).numpy()
    best: tuple[float, float, torch.nn.Linear] | None = None
    head = None
    for l2 in sorted(l2_grid, reverse=True):
        head = fit_logistic(train_x, train_y, l2, max_iter, warm_start=head)
        with torch.no_grad():
            scores = head(val_x).numpy()
        value = score_patches(scores, val_y, names)["patch_mAP"]
        if best is None or value > best[1]:
            best = (float(l2), value, head)
    return best
