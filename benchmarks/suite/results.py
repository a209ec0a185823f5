"""Result records: one per method/task/dataset/fraction/seed/metric, with a documented schema."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from sista_kit.io import write_json_atomic, write_text_atomic

#: Field -> accepted Python types. ``fraction`` is None for rows that are not about a label fraction
#: (pretraining diagnostics such as retrieval or false-negative detection). ``pretrain_seed`` names the
#: pretraining replicate (None for rows without one, e.g. provider diagnostics); ``seed`` the transfer seed
#: (label subset and head initialisation). ``n_train`` / ``n_pos``: studies in the label subset and the
#: fewest positives of any target class in it (transfer rows only).
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "method": (str,),
    "task": (str,),
    "dataset": (str,),
    "fraction": (float, int, type(None)),
    "seed": (int,),
    "pretrain_seed": (int, type(None)),
    "n_train": (int, type(None)),
    "n_pos": (int, type(None)),
    "metric": (str,),
    "value": (float, int),
}
#: Fields a record may leave out: they default to None.
OPTIONAL_FIELDS = ("pretrain_seed", "n_train", "n_pos")


def make_record(**fields: Any) -> dict[str, Any]:
    """A record with the optional fields filled in (None), validated."""
    record = {**dict.fromkeys(OPTIONAL_FIELDS), **fields}
    validate_record(record)
    return record


def validate_record(record: dict[str, Any]) -> None:
    """Raise ValueError naming the field when ``record`` does not follow :data:`RECORD_FIELDS`."""
    missing = set(RECORD_FIELDS) - set(record)
    if missing:
        raise ValueError(f"result record misses {sorted(missing)}: {record}")
    for field, types in RECORD_FIELDS.items():
        if not isinstance(record[field], types) or isinstance(record[field], bool):
            raise ValueError(f"result field {field!r} has type {type(record[field]).__name__}: {record}")
    if not math.isfinite(record["value"]):
        raise ValueError(f"result value is not finite: {record}")
    if record["fraction"] is not None and not 0 < record["fraction"] <= 1:
        raise ValueError(f"fraction must lie in (0, 1]: {record}")


def write_records(records: list[dict[str, Any]], out_dir: Path) -> None:
    """Write ``results.json`` and ``results.csv`` (validated, stable order)."""
    for record in records:
        validate_record(record)
    key = lambda r: (  # noqa: E731
        r["task"],
        r["dataset"],
        r["metric"],
        r["method"],
        r["fraction"] or 0.0,
        -1 if r["pretrain_seed"] is None else r["pretrain_seed"],
        r["seed"],
    )
    records = sorted(records, key=key)
    write_json_atomic(out_dir / "results.json", records, indent=1)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(RECORD_FIELDS))
    writer.writeheader()
    writer.writerows({k: r[k] for k in RECORD_FIELDS} for r in records)
    write_text_atomic(out_dir / "results.csv", table.getvalue())


def load_records(out_dir: Path) -> list[dict[str, Any]]:
    """Read and validate ``results.json``."""
    records = json.loads((out_dir / "results.json").read_text())
    for record in records:
        validate_record(record)
    return records
