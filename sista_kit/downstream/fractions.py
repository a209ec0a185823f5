"""Label fractions (1% / 10% / 100% protocol): stratified, nested, deterministic subsets of a training split.

With the task's labels, every subset holds at least ``min_positives`` positive studies of every target
class (the smallest fraction then has more studies than ``fraction x N`` when that is needed; the record's
``n_train`` says how many), the rest is stratified by label pattern, and for one seed the subsets of all
fractions are nested.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Positive studies of every target class that every label subset holds.
MIN_POSITIVES = 2


def id_positions(ids: Sequence[str], keep: Sequence[str]) -> list[int]:
    """Positions in ``ids`` of the ids in ``keep``, in the order of ``ids``."""
    wanted = set(keep)
    return [i for i, s in enumerate(ids) if s in wanted]


def _order(n: int, seed: int, labels: np.ndarray | None, min_positives: int) -> tuple[np.ndarray, int]:
    """A seeded ordering of ``n`` studies whose prefixes are the subsets, and the length of its
    guaranteed head (the fewest studies that hold ``min_positives`` positives of every class)."""
    from sista_kit.data.subsets import stratified_order

    strata = None if labels is None else ["".join("1" if v else "0" for v in row) for row in labels]
    order = stratified_order(n, seed, strata)
    if labels is None:
        return order, 0
    head: list[int] = []
    taken = np.zeros(n, dtype=bool)
    for k in range(labels.shape[1]):
        have = int(labels[head, k].sum()) if head else 0
        need = min(min_positives, int(labels[:, k].sum()))
        for i in order:
            if have >= need:
                break
            if labels[i, k] and not taken[i]:
                head.append(int(i))
                taken[i] = True
                have += 1
    rest = [int(i) for i in order if not taken[i]]
    return np.asarray(head + rest, dtype=np.int64), len(head)


def select_fraction(
    ids: Sequence[str],
    fraction: float,
    seed: int,
    labels: Sequence[Sequence[float]] | np.ndarray | None = None,
    min_positives: int = MIN_POSITIVES,
) -> list[str]:
    """The training ids kept at ``fraction`` for ``seed``, in the order of ``ids``.

    Without ``labels``: ``max(1, round(fraction * len(ids)))`` ids, deterministic per seed and nested across
    fractions. With ``labels`` ((N, K) 0/1, the task's target classes): stratified by label pattern, and at
    least ``min_positives`` positives of every class in every subset (so the subset may be larger than
    ``fraction * N``); a class with fewer positives in the whole pool contributes all it has (the
    record's ``n_pos`` shows it).
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"label fraction must lie in (0, 1], got {fraction}")
    if not ids:
        raise ValueError("no training samples to select a label fraction from")
    n = len(ids)
    array = None if labels is None else np.asarray(labels, dtype=np.float64).reshape(n, -1) > 0.5
    order, head = _order(n, int(seed), array, min_positives)
    count = max(1, round(float(fraction) * n), head)
    return [str(ids[i]) for i in np.sort(order[:count])]


def subset_counts(labels: Sequence[Sequence[float]] | np.ndarray) -> dict[str, int]:
    """``n_train`` and ``n_pos`` (the fewest positives of any target class) of a chosen subset."""
    array = np.asarray(labels, dtype=np.float64)
    array = array.reshape(len(array), -1) if len(array) else array.reshape(0, 1)
    return {"n_train": int(len(array)), "n_pos": int((array > 0.5).sum(0).min()) if array.size else 0}


def manifest_labels(data_root: str | Path, ids: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """(len(ids), len(classes)) 0/1 labels of ``ids`` for the named classes, read from the dataset
    folder's ``manifest.jsonl`` (``labels`` in the order of ``meta.json``'s ``class_names``)."""
    root = Path(data_root)
    meta_path, manifest = root / "meta.json", root / "manifest.jsonl"
    for path in (meta_path, manifest):
        if not path.is_file():
            raise FileNotFoundError(f"label fractions need {path} (a sista_kit dataset folder)")
    names = list(json.loads(meta_path.read_text()).get("class_names") or [])
    missing = [c for c in classes if c not in names]
    if missing:
        raise ValueError(f"classes {missing} are not among the dataset's class_names {names} ({meta_path})")
    columns = [names.index(c) for c in classes]
    by_id: dict[str, list[int]] = {}
    with open(manifest) as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                by_id[str(row["id"])] = row["labels"]
    unknown = [i for i in ids if str(i) not in by_id]
    if unknown:
        raise KeyError(f"{len(unknown)} ids are not in {manifest}, e.g. {unknown[:3]}")
    return np.asarray([[by_id[str(i)][c] for c in columns] for i in ids], dtype=np.float64)
