"""False-negative detection of every report-similarity provider on the IU and synthetic tracks.

    python benchmarks/eval_similarity.py                      # all providers, both tracks
    python benchmarks/eval_similarity.py --providers findings,tfidf --tracks iu

Each track is split by index: the even-indexed reports are the training half (TF-IDF corpus and
threshold calibration), the odd-indexed half is held out and measured. Truth: pairs of reports
with equal MeSH major-tag sets (IU) or equal finding sets (synthetic), within consecutive batches
of ``--batch-size``. For each provider it prints AP and precision / recall at the default SIA
threshold 0.9 and at the threshold calibrated on the training half for ``--target-precision``,
plus the labeler's exact finding-set accuracy on the synthetic reports. Offline; the IU reports
come from the installed torchxrayvision package, the synthetic ones are generated.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sista_kit.similarity import (
    Calibration,
    EncoderSimilarity,
    FindingsSimilarity,
    LabelSimilarity,
    ReportSimilarity,
    TfidfSimilarity,
    finding_sets,
    label_reports,
    report_labels,
)
from sista_kit.similarity.calibration import (
    figures_at,
    pair_scores,
    provider_embeddings,
    threshold_for_precision,
    truth_matrix,
)
from sista_kit.similarity.observations import SYNTHETIC_CLASSES

PROVIDERS = ("encoder", "tfidf", "labels", "findings")


@dataclass
class Track:
    """Reports, truth keys and optional dataset labels of one half of a track."""

    texts: list[str]
    keys: list[Any]
    labels: dict[str, torch.Tensor]  # label variant -> (N, K) labels


def iu_track() -> tuple[Track, Track, dict[str, Any]]:
    from sista_kit.data import iu

    reports, _ = iu.read_iu_reports()

    def half(rs: list) -> Track:
        tags = [r.tags for r in rs]
        with_other = torch.from_numpy(iu.similarity_labels(tags))
        texts = [r.text for r in rs]
        return Track(
            texts,
            [iu.tag_set(t) for t in tags],
            {
                "tags (7 classes)": with_other[:, :-1],
                "tags + other abnormal": with_other,
                "labeler": torch.from_numpy(report_labels(texts)),
            },
        )

    return half(reports[0::2]), half(reports[1::2]), {}


def synthetic_track(n: int, seed: int) -> tuple[Track, Track, dict[str, Any]]:
    from sista_kit.data.synthetic import generate

    samples = generate(n, seed=seed, image_size=32)

    def half(ss: list) -> Track:
        texts = [s.report for s in ss]
        return Track(
            texts,
            [s.finding_key for s in ss],
            {
                "dataset labels": torch.from_numpy(np.stack([s.labels for s in ss])),
                "labeler": torch.from_numpy(report_labels(texts, SYNTHETIC_CLASSES)),
            },
        )

    train, test = half(samples[0::2]), half(samples[1::2])
    exact = np.mean([a == b for a, b in zip(finding_sets(label_reports(test.texts)), test.keys, strict=True)])
    return train, test, {"labeler_exact_set_accuracy": float(exact)}


def providers(names: list[str], track: str, train: Track) -> dict[str, tuple[ReportSimilarity, Callable]]:
    """name -> (provider, half -> its inputs)."""
    out: dict[str, tuple[ReportSimilarity, Callable]] = {}
    for name in names:
        if name == "encoder":
            out[name] = (EncoderSimilarity(), lambda h: h.texts)
        elif name == "tfidf":
            out[name] = (TfidfSimilarity(train.texts), lambda h: h.texts)
        elif name == "labels":
            for variant in train.labels:
                out[f"labels [{variant}]"] = (LabelSimilarity(), lambda h, v=variant: h.labels[v])
        elif name == "findings":
            classes = "synthetic" if track == "synthetic" else "all"
            out[name] = (FindingsSimilarity(train.texts, classes=classes), lambda h: h.texts)
        else:
            raise SystemExit(f"unknown provider {name!r}; expected some of {', '.join(PROVIDERS)}")
    return out


def evaluate(args: argparse.Namespace, track: str) -> dict[str, Any]:
    train, test, extra = iu_track() if track == "iu" else synthetic_track(args.synthetic_n, args.seed)
    rows: dict[str, Any] = {}
    for name, (provider, inputs) in providers(args.providers, track, train).items():
        # the same as calibrate() on the training half and detection() on the held-out half,
        # with each half embedded once
        fit = pair_scores(
            provider_embeddings(provider, inputs(train)), truth_matrix(train.keys), args.batch_size
        )
        held = pair_scores(
            provider_embeddings(provider, inputs(test)), truth_matrix(test.keys), args.batch_size
        )
        threshold = threshold_for_precision(*fit, args.target_precision)
        at: dict[str, Calibration] = {
            "0.9": figures_at(*held, 0.9),
            "calibrated": figures_at(*held, threshold),
        }
        rows[name] = {k: v.as_dict() for k, v in at.items()}
    return {"track": track, "held_out_reports": len(test.texts), **extra, "providers": rows}


def _print(result: dict[str, Any]) -> None:
    print(f"\n## {result['track']} track, {result['held_out_reports']} held-out reports (odd-indexed)")
    if "labeler_exact_set_accuracy" in result:
        print(f"labeler exact finding-set accuracy: {result['labeler_exact_set_accuracy']:.3f}")
    print(
        f"{'provider':34s} {'AP':>6s} | {'P@0.9':>6s} {'R@0.9':>6s} | {'thr':>6s} {'P@thr':>6s} {'R@thr':>6s}"
    )
    for name, r in result["providers"].items():
        a, c = r["0.9"], r["calibrated"]
        print(
            f"{name:34s} {a['ap']:6.3f} | {a['precision']:6.3f} {a['recall']:6.3f} | "
            f"{c['threshold']:6.3f} {c['precision']:6.3f} {c['recall']:6.3f}"
        )
    print(
        f"false-negative share of pairs: {next(iter(result['providers'].values()))['0.9']['truth_share']:.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", default=",".join(PROVIDERS), help="comma-separated providers")
    parser.add_argument("--tracks", default="iu,synthetic", help="comma-separated: iu, synthetic")
    parser.add_argument(
        "--batch-size", type=int, default=128, help="pairs are taken within batches of this size"
    )
    parser.add_argument("--target-precision", type=float, default=0.95, help="for the calibrated threshold")
    parser.add_argument("--synthetic-n", type=int, default=4096, help="synthetic reports (both halves)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.providers = [p for p in args.providers.split(",") if p]
    torch.manual_seed(args.seed)
    results = [evaluate(args, t) for t in args.tracks.split(",") if t]
    for r in results:
        _print(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
