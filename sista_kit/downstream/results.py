"""The ``metrics.json`` record each downstream run writes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def write_metrics(out: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` to ``out/metrics.json`` atomically; non-finite metrics become null."""
    metrics = record.get("metrics", {})
    record = {**record, "metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(tmp, out / "metrics.json")
    return out / "metrics.json"
