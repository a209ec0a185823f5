"""The prepare step: a real dataset's official layout -> the project's dataset folder.

read (adapters) -> decode and resize into a staging folder (resumable) -> split (MGCA's protocol) ->
write through the same folder writer as the synthetic and IU tracks -> label-fraction files and
``checksums.json`` (SHA-256 of every file read and written). ``meta.json`` records the request; a
second run with the same request and unchanged annotation files does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..synthetic.export import FORMAT_VERSION, SPLITS, export_folder, label_fraction
from ..synthetic.findings import CLASS_NAMES, LOCALISED, finding_key
from ..synthetic.generator import Sample
from .registry import DATASETS
from .splits import assign_splits
from .stage import sha256_file, stage_all
from .study import Collected

log = logging.getLogger("sista_kit.data.prepare")

PREPARE_VERSION = 1
STAGING = ".prepare"
CHECKSUMS = "checksums.json"
#: Label fractions and seeds whose training subsets are written to ``splits/label_fractions/``.
FRACTIONS = (0.01, 0.1, 1.0)
FRACTION_SEEDS = (0, 1, 2)


def staged_chunk(staging: str, dataset: str, rows: list[dict]) -> list[Sample]:
    """Samples of one chunk from the staging folder (the ``produce`` function of the folder writer)."""
    out = []
    for r in rows:
        with Image.open(Path(staging) / "images" / f"{r['id']}.png") as im:
            image = np.asarray(im)
        with Image.open(Path(staging) / "masks" / f"{r['id']}.png") as im:
            bits = np.asarray(im)
        labels = np.asarray(r["labels"], dtype=np.float32)
        out.append(
            Sample(
                sample_id=r["id"],
                image=image,
                report=r["report"],
                labels=labels,
                finding_key=finding_key(labels > 0),
                maskbits=bits,
                boxes=[tuple(b) for b in r["boxes"]],
                spans=[],
                findings=[{"source": dataset, "source_label": r["source_label"], "source_file": r["source"]}],
            )
        )
    return out


def _request(dataset: str, src: Path, image_size: int, seed: int, options: dict, inputs: list[Path]) -> dict:
    return {
        "dataset": dataset,
        "source": str(src.resolve()),
        "image_size": int(image_size),
        "seed": int(seed),
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(options.items())},
        "inputs": {str(p.resolve().relative_to(src.resolve())): sha256_file(p) for p in inputs},
        "prepare_version": PREPARE_VERSION,
    }


def _up_to_date(out: Path, request: dict, overwrite: bool) -> bool:
    meta_path = out / "meta.json"
    if not meta_path.exists():
        return False
    try:
        old = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta_path} is corrupt: {e}") from e
    if old.get("request") == request:
        return (out / CHECKSUMS).exists()
    if not overwrite:
        raise FileExistsError(
            f"{out} holds a different dataset ({meta_path}); pass --overwrite or choose another --out"
        )
    return False


def _fraction_files(out: Path, train_ids: list[str], strata: list[str]) -> None:
    """Label-fraction subsets of the training split, stratified by finding set and nested per seed."""
    target = out / "splits" / "label_fractions"
    target.mkdir(parents=True, exist_ok=True)
    for f in FRACTIONS:
        for seed in FRACTION_SEEDS:
            ids = label_fraction(train_ids, f, seed, strata=strata) if train_ids else []
            (target / f"train_f{f:g}_s{seed}.txt").write_text("".join(i + "\n" for i in ids))


def _checksums(out: Path, read: dict[str, str]) -> None:
    written = {
        str(p.relative_to(out)): sha256_file(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != CHECKSUMS and STAGING not in p.relative_to(out).parts
    }
    tmp = out / f"{CHECKSUMS}.tmp"
    tmp.write_text(json.dumps({"algorithm": "sha256", "read": read, "written": written}, indent=1))
    tmp.replace(out / CHECKSUMS)


def _log_drops(collected: Collected, staged_drops: dict[str, list[str]]) -> dict[str, int]:
    counts = dict(collected.dropped)
    for reason, ids in staged_drops.items():
        counts[reason] = counts.get(reason, 0) + len(ids)
    names = {**collected.dropped_ids, **{k: v[:20] for k, v in staged_drops.items()}}
    for reason, n in sorted(counts.items()):
        if n:
            first = names.get(reason, [])[:5]
            log.warning(
                "dropped %d row(s): %s%s", n, reason, f" (first: {', '.join(first)})" if first else ""
            )
    return {k: v for k, v in sorted(counts.items()) if v}


def prepare(
    dataset: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    image_size: int = 224,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    keep_staging: bool = False,
    **options,
) -> Path:
    """Prepare ``dataset`` (a key of ``DATASETS``) from its official layout in ``src`` into ``out``.

    ``options`` go to the dataset's reader (e.g. ``uncertainty``, ``min_words``, ``probe_fraction``).
    Idempotent (same request and annotation files: nothing is redone) and resumable (decoded images
    are kept in ``out/.prepare`` until the folder is complete). Raises FileNotFoundError / ValueError
    naming the missing file, column or bad row; never downloads.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if int(image_size) < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise FileNotFoundError(f"--src {src} is not a folder (the dataset as downloaded)")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise ValueError(f"--out {out} must not lie inside --src {src}")
    collected = DATASETS[dataset](src, **options)
    request = _request(dataset, src, image_size, seed, options, collected.inputs)
    if _up_to_date(out, request, overwrite):
        log.info("%s is up to date (%s)", out, out / "meta.json")
        return out
    ids = [s.sample_id for s in collected.studies]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{dataset}: sample id {dup!r} occurs more than once in {src}")
    staging = out / STAGING
    out.mkdir(parents=True, exist_ok=True)
    staged = stage_all(collected.studies, image_size, staging, src, workers=workers, progress=progress)
    staged_drops: dict[str, list[str]] = {}
    kept, rows = [], []
    for s in collected.studies:
        rec = staged[s.sample_id]
        if "dropped" in rec:
            staged_drops.setdefault(rec["dropped"], []).append(f"{s.sample_id} ({rec['path']})")
            continue
        kept.append(s)
        rows.append(
            {
                "id": s.sample_id,
                "report": s.report,
                "labels": [float(x) for x in s.labels],
                "boxes": rec["boxes"],
                "source": rec["source"],
                "source_label": s.source_label,
            }
        )
    dropped = _log_drops(collected, staged_drops)
    if not kept:
        raise ValueError(f"{dataset}: no usable studies in {src} (dropped: {dropped or 'none'})")
    splits = assign_splits(kept, collected.split_rule, seed)
    meta = {
        "format_version": FORMAT_VERSION,
        "track": "prepare",
        "request": request,
        "n": len(kept),
        "image_size": int(image_size),
        "dropped": dropped,
        "split_rule": collected.split_rule,
        "split_counts": {sp: splits.count(sp) for sp in SPLITS},
        "class_names": list(CLASS_NAMES),
        "localised": list(LOCALISED),
        "class_map": collected.class_map,
        "targets": collected.targets,
    }
    chunk = 64
    jobs = [(str(staging), dataset, rows[i : i + chunk]) for i in range(0, len(rows), chunk)]
    export_folder(
        out,
        meta,
        staged_chunk,
        jobs,
        np.asarray([SPLITS.index(sp) for sp in splits], dtype=np.int64),
        description=f"sista_kit prepared {dataset}",
        workers=1,
        overwrite=True,  # a different dataset in ``out`` was refused above
        progress=progress,
    )
    train = [s for s, sp in zip(kept, splits, strict=True) if sp == "train"]
    _fraction_files(out, [s.sample_id for s in train], [finding_key(s.labels > 0) for s in train])
    read = dict(request["inputs"])
    read.update({staged[s.sample_id]["source"]: staged[s.sample_id]["sha256"] for s in kept})
    _checksums(out, read)
    if not keep_staging:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s: wrote %d studies to %s (splits %s)", dataset, len(kept), out, meta["split_counts"])
    return out
