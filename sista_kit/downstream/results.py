"""The ``metrics.json`` record each downstream run writes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sista_kit.io import write_json_atomic


def write_metrics(out: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` to ``out/metrics.json`` atomically; non-finite metrics become null."""
    metrics = record.get("metrics", {})
    record = {**record, "metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}}
    return write_json_atomic(Path(out) / "metrics.json", record, indent=2, sort_keys=True)
