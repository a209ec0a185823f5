"""The diagnostics stage: false-negative detection per provider, retrieval and grounding per method."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from . import diagnostics
from .pipeline import Ledger


def _test_loader(checkpoint_dir: Path | None, data_root: Path, split: str, samples: int, max_length: int):
    from torch.utils.data import DataLoader, Subset

    from sista_kit.data import ImageTransform, PretrainDataset, collate_pretrain, load_tokenizer

    tokenizer = load_tokenizer(checkpoint_dir / "tokenizer")
    dataset = PretrainDataset(
        data_root, tokenizer, max_length, ImageTransform(), split=split, return_masks=True
    )
    subset = Subset(dataset, range(min(samples, len(dataset))))
    return DataLoader(subset, batch_size=32, shuffle=False, collate_fn=collate_pretrain)


def fn_records(data_root: Path, profile: dict[str, Any], ledger: Ledger, out: Path) -> list[dict[str, Any]]:
    """Precision / recall of each report-similarity provider on a random sample of pretraining reports."""
    from sista_kit.data.synthetic.export import read_manifest

    done = out / "diagnostics" / "fn_detection.json"
    cached = ledger.cached(done, "diagnostics/fn_detection")
    if cached is None:
        rows = read_manifest(data_root, "pretrain")
        picked = random.Random(0).sample(rows, min(profile["diagnostics"]["samples"], len(rows)))
        labels = torch.tensor([r["labels"] for r in picked], dtype=torch.float32)
        found = diagnostics.fn_detection(
            [r["report"] for r in picked],
            labels,
            [r["finding_key"] for r in picked],
            [r["report"] for r in rows],
            threshold=0.9,
            providers=profile["diagnostics"]["providers"],
        )
        cached = ledger.record(done, "diagnostics/fn_detection", {"rows": found})
    return [
        dict(
            method=r["provider"],
            task="fn_detection",
            dataset="pretrain",
            fraction=None,
            seed=0,
            metric=r["metric"],
            value=float(r["value"]),
        )
        for r in cached["rows"]
    ]


def method_records(
    checkpoints: dict[str, Path],
    random_model: Any,
    data_root: Path,
    profile: dict[str, Any],
    ledger: Ledger,
    out: Path,
) -> tuple[list[dict[str, Any]], Path | None]:
    """Retrieval and pointing-game grounding of each pretrained method on the test split, and a figure
    of word-to-patch maps."""
    from sista_kit.models.checkpoint import load_checkpoint

    records, encodings = [], {}
    samples = profile["diagnostics"]["samples"]
    max_length = profile["pretrain"]["max_length"]
    any_ckpt = next(iter(checkpoints.values()))
    models = {m: (lambda c=c: load_checkpoint(c)) for m, c in checkpoints.items()}
    if random_model is not None:
        models["random"] = random_model
    for method, build in models.items():
        done = out / "diagnostics" / f"{method}.json"
        cached = ledger.cached(done, f"diagnostics/{method}")
        need_maps = method in ("sista", "sta", "gloria", "mgca", "clip")
        if cached is None or need_maps:
            tok_dir = checkpoints.get(method, any_ckpt)
            loader = _test_loader(tok_dir, data_root, "test", samples, max_length)
            enc = diagnostics.encode_split(build(), loader, num_words=max_length)
            if need_maps:
                encodings[method] = enc
            if cached is None:
                metrics = {**diagnostics.retrieval(enc), **diagnostics.pointing_game(enc)}
                cached = ledger.record(done, f"diagnostics/{method}", {"metrics": metrics})
        for metric, value in cached["metrics"].items():
            task = "grounding" if metric.startswith("pointing") else "retrieval"
            records.append(
                dict(
                    method=method,
                    task=task,
                    dataset="test",
                    fraction=None,
                    seed=0,
                    metric=metric,
                    value=float(value),
                )
            )
    figure = diagnostics.alignment_figure(encodings, out / "alignment_maps.png") if encodings else None
    return records, figure
