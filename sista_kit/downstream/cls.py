"""Classification transfer: linear probe on the frozen encoder (MGCA's protocol) or full fine-tuning.

Multi-label targets (N, K) of 0/1 are scored by macro AUROC (scikit-learn); multi-class targets (N,)
of class indices by accuracy. The linear probe extracts the frozen features once and trains the
linear layer on them, which is exactly equivalent and much cheaper than re-encoding every step.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cls_data import ClsSplit, load_cls_splits
from .encoder import RANDOM, build_trunk
from .features import MultiScaleEncoder
from .fractions import select_fraction
from .results import write_metrics

__all__ = ["PROTOCOLS", "ClsSplit", "run_cls", "score", "train_linear_probe", "finetune", "extract_features"]

PROTOCOLS = ("linear", "finetune")


def normalise(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 / [0, 1] images -> float, resized to ``size``, normalised as in pretraining
    (``sista_kit.data.transforms``: (x - MEAN) / STD on [0, 1])."""
    from sista_kit.data.transforms import MEAN, STD

    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x - MEAN) / STD


@torch.no_grad()
def extract_features(
    encoder: MultiScaleEncoder,
    images: torch.Tensor,
    size: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "features",
) -> torch.Tensor:
    """Pooled encoder features (N, D) of ``images``, in eval mode, batch by batch."""
    encoder.eval()
    out = []
    for start in tqdm(range(0, images.shape[0], batch_size), desc=desc, disable=not progress, leave=False):
        x = normalise(images[start : start + batch_size], size).to(device)
        out.append(encoder.pooled(x).float().cpu())
    return torch.cat(out)


def classification_loss(logits: torch.Tensor, target: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """BCE-with-logits (multi-label) or cross-entropy (multi-class)."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, target.float())
    return F.cross_entropy(logits, target.long())


def score(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Macro AUROC (multi-label; classes with both outcomes present) or accuracy (multi-class)."""
    from sklearn.metrics import roc_auc_score

    if not np.isfinite(logits).all():
        raise ValueError("classifier produced non-finite scores")
    if labels.ndim == 2:
        ok = [k for k in range(labels.shape[1]) if 0 < labels[:, k].sum() < labels.shape[0]]
        if not ok:
            raise ValueError("no class has both positive and negative samples in the evaluation split")
        auc = roc_auc_score(labels[:, ok], logits[:, ok], average="macro")
        return {"auroc": 100.0 * float(auc), "auroc_classes": float(len(ok))}
    acc = float((logits.argmax(1) == labels).mean())
    return {"accuracy": 100.0 * acc}


def _num_outputs(labels: np.ndarray, n_classes: int | None) -> int:
    if labels.ndim == 2:
        return int(labels.shape[1])
    return int(n_classes if n_classes is not None else labels.max() + 1)


def train_linear_probe(
    train_x: torch.Tensor,
    train_y: np.ndarray,
    num_outputs: int,
    *,
    iters: int = 500,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> nn.Linear:
    """Fit a linear layer on frozen features (AdamW, mini-batches, cosine decay); returns it on CPU."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Linear(train_x.shape[1], num_outputs)
    # Standardise features with training statistics, folded into the layer afterwards.
    mean, std = train_x.mean(0), train_x.std(0, unbiased=False).clamp_min(1e-6)
    x = (train_x - mean) / std
    y = torch.as_tensor(train_y)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iters)
    n = x.shape[0]
    for _ in tqdm(range(iters), desc="linear probe", disable=not progress, leave=False):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        loss = classification_loss(head(x[idx]), y[idx], train_y.ndim == 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():  # fold the standardisation: W (x - m) / s + b
        w = head.weight / std
        head.bias -= (w * mean).sum(1)
        head.weight.copy_(w)
    return head


def finetune(
    encoder: MultiScaleEncoder,
    head: nn.Linear,
    train: ClsSplit,
    size: int,
    *,
    iters: int = 200,
    lr: float = 1e-4,
    weight_decay: float = 0.05,
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> None:
    """Train encoder and head end to end (AdamW, cosine decay), in place."""
    g = torch.Generator().manual_seed(seed)
    params = [p for p in [*encoder.parameters(), *head.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iters)
    y_all = torch.as_tensor(train.labels)
    encoder.train()
    head.train()
    n = len(train.ids)
    bar = tqdm(range(iters), desc="fine-tune", disable=not progress, leave=False)
    for step in bar:
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        x = normalise(train.images[idx], size).to(device)
        loss = classification_loss(head(encoder.pooled(x)), y_all[idx].to(device), train.multilabel)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 10 == 0 or step == iters - 1:  # host sync only now and then
            value = float(loss.detach())
            if not np.isfinite(value):
                raise FloatingPointError(f"fine-tuning loss became {value} at step {step}")
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)


def run_cls(
    checkpoint: str | Path = RANDOM,
    *,
    data_root: str | Path | None = None,
    splits: dict[str, ClsSplit] | None = None,
    out: str | Path | None = None,
    fraction: float = 1.0,
    seed: int = 0,
    arch: str | None = None,
    protocol: str = "linear",
    iters: int | None = None,
    batch_size: int = 64,
    lr: float | None = None,
    n_classes: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, float]:
    """Classification transfer; returns test metrics (``auroc`` or ``accuracy``, in %) and writes
    ``out/metrics.json`` and ``out/classifier.safetensors``.

    Args:
        checkpoint: sista_kit checkpoint folder, ``"random"`` (needs ``arch``) or ``"random:DIR"``.
        data_root: a sista_kit disk export (read with ``sista_kit.downstream.cls_data.load_cls_splits``);
            or give ``splits`` ({"train", "test"[, "val"]}) directly.
        fraction, seed: label fraction of the training split and its seed (also seeds training).
        protocol: ``"linear"`` (frozen encoder + linear layer, the default) or ``"finetune"``.
        iters: optimisation steps (default 500 linear / 200 fine-tune).
        n_classes: number of classes for multi-class labels (default: max label + 1).
        device: ``"cpu"`` or ``"cuda"``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if (data_root is None) == (splits is None):
        raise ValueError("give exactly one of data_root or splits")
    t0 = time.perf_counter()
    if splits is None:
        splits = load_cls_splits(data_root)
    for name in ("train", "test"):
        if name not in splits:
            raise KeyError(f"classification data has no {name!r} split (has {sorted(splits)})")
    pool = splits["train"]
    strata = (
        pool.labels
        if pool.labels.ndim == 2
        else np.eye(_num_outputs(pool.labels, n_classes))[pool.labels.astype(np.int64)]
    )
    train = pool.subset(select_fraction(pool.ids, fraction, seed, labels=strata))
    test = splits["test"]
    torch.manual_seed(seed)
    trunk, spec = build_trunk(checkpoint, arch)
    encoder = MultiScaleEncoder(trunk, frozen=protocol == "linear").to(device)
    k = _num_outputs(train.labels, n_classes)
    if protocol == "linear":
        steps = 500 if iters is None else int(iters)
        tr = extract_features(
            encoder, train.images, spec.image_size, batch_size, device, progress, "train features"
        )
        te = extract_features(
            encoder, test.images, spec.image_size, batch_size, device, progress, "test features"
        )
        head = train_linear_probe(
            tr, train.labels, k, iters=steps, lr=1e-2 if lr is None else lr, seed=seed, progress=progress
        )
        with torch.no_grad():
            logits = head(te).numpy()
    else:
        steps = 200 if iters is None else int(iters)
        head = nn.Linear(encoder.pooled_dim, k).to(device)
        finetune(
            encoder,
            head,
            train,
            spec.image_size,
            iters=steps,
            lr=1e-4 if lr is None else lr,
            batch_size=batch_size,
            seed=seed,
            device=device,
            progress=progress,
        )
        encoder.eval()
        head.eval()
        with torch.no_grad():
            feats = extract_features(
                encoder, test.images, spec.image_size, batch_size, device, progress, "test"
            )
            logits = head(feats.to(device)).float().cpu().numpy()
    metrics = score(logits, test.labels)
    if out is not None:
        _save(out, encoder if protocol == "finetune" else None, head)
        write_metrics(
            out,
            {
                "task": "cls",
                "protocol": protocol,
                "checkpoint": str(checkpoint),
                "arch": spec.model_name,
                "image_size": spec.image_size,
                "fraction": float(fraction),
                "seed": int(seed),
                "iters": steps,
                "n_train": len(train.ids),
                "n_test": len(test.ids),
                "metrics": metrics,
                "wall_s": round(time.perf_counter() - t0, 2),
            },
        )
    return metrics


def _save(out: str | Path, encoder: nn.Module | None, head: nn.Module) -> None:
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {f"head.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    if encoder is not None:
        state.update(
            {f"trunk.{k}": v.detach().cpu().contiguous() for k, v in encoder.trunk.state_dict().items()}
        )
    save_file(state, str(out / "classifier.safetensors"))
