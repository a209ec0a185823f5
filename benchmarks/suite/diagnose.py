"""The diagnostics stage: false-negative detection per provider, retrieval and grounding per method."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from . import diagnostics
from .pipeline import Ledger, is_synthetic


def _test_loader(checkpoint_dir: Path, data_root: Path, split: str, samples: int, max_length: int):
    from sista_kit.data import load_tokenizer
    from sista_kit.eval import split_loader

    return split_loader(data_root, load_tokenizer(checkpoint_dir / "tokenizer"), split, samples, max_length)


def fn_records(data_root: Path, profile: dict[str, Any], ledger: Ledger, out: Path) -> list[dict[str, Any]]:
    """AP and precision / recall (at SIA's threshold) of each report-similarity provider on a random sample
    of pretraining reports, pairs within batch-sized blocks."""
    from sista_kit.data.synthetic.export import read_manifest

    from .profiles import TEXT_SIMILARITY

    synthetic = is_synthetic(data_root)
    done = out / "diagnostics" / "fn_detection.json"
    cached = ledger.cached(done, "diagnostics/fn_detection")
    if cached is None:
        rows = read_manifest(data_root, "pretrain")
        size = profile["diagnostics"].get("fn_samples", profile["diagnostics"]["samples"])
        picked = random.Random(0).sample(rows, min(size, len(rows)))
        labels = torch.tensor([r["labels"] for r in picked], dtype=torch.float32)
        found = diagnostics.fn_detection(
            [r["report"] for r in picked],
            labels,
            [r["finding_key"] for r in picked],
            [r["report"] for r in rows],
            threshold=TEXT_SIMILARITY["threshold"],
            providers=profile["diagnostics"]["providers"],
            batch_size=profile["pretrain"]["batch_size"],
            classes="synthetic" if synthetic else "all",
        )
        cached = ledger.record(done, "diagnostics/fn_detection", {"rows": found})
    from .results import make_record

    return [
        make_record(
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


#: Methods whose word-to-patch maps the alignment figure shows (seed 0).
FIGURE_METHODS = ("sista", "clip+sta", "gloria", "mgca", "clip")


def method_records(
    checkpoints: dict[tuple[str, int], Path],
    random_model: Any,
    seeds: int,
    data_root: Path,
    profile: dict[str, Any],
    ledger: Ledger,
    out: Path,
) -> tuple[list[dict[str, Any]], Path | None]:
    """Retrieval and grounding (pointing game, hit rate at 3, with their chance levels) of every
    checkpoint ((method, pretraining seed)) and of random init per seed, on the test split; and a figure
    of word-to-patch maps of the seed-0 checkpoints."""
    from sista_kit.eval import encode_split, pointing_game, retrieval_metrics
    from sista_kit.models.checkpoint import load_checkpoint

    from .pipeline import config_hash
    from .results import make_record

    records, encodings = [], {}
    samples = profile["diagnostics"]["samples"]
    max_length = profile["pretrain"]["max_length"]
    any_ckpt = checkpoints[min(checkpoints)]  # tokenizer and config of the random-init rows
    models = {key: (lambda c=c: load_checkpoint(c)) for key, c in checkpoints.items()}
    if random_model is not None:
        models.update({("random", s): (lambda s=s: random_model(s)) for s in range(seeds)})
    for (method, seed), build in models.items():
        ckpt = checkpoints.get((method, seed), any_ckpt)
        key = config_hash([str(ckpt) if method != "random" else profile["pretrain"], method, seed, samples])
        done = out / "diagnostics" / f"{method}-s{seed}-{key}.json"
        name = f"diagnostics/{method}/s{seed}"
        cached = ledger.cached(done, name)
        need_maps = seed == 0 and method in FIGURE_METHODS
        if cached is None or need_maps:
            loader = _test_loader(ckpt, data_root, "test", samples, max_length)
            enc = encode_split(build(), loader, num_words=max_length)
            if need_maps:
                encodings[method] = enc
            if cached is None:
                retrieval = retrieval_metrics(enc["image_features"], enc["text_features"], enc["finding_key"])
                cached = ledger.record(done, name, {"metrics": {**retrieval, **pointing_game(enc)}})
        for metric, value in cached["metrics"].items():
            task = "retrieval" if metric.startswith("retrieval") else "grounding"
            records.append(
                make_record(
                    method=method,
                    task=task,
                    dataset="test",
                    fraction=None,
                    seed=seed,
                    pretrain_seed=seed,
                    metric=metric,
                    value=float(value),
                )
            )
    figure = diagnostics.alignment_figure(encodings, out / "alignment_maps.png") if encodings else None
    return records, figure
