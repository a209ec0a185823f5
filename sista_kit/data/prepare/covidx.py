"""COVIDx CXR: official train / (val) / test split files; 10 % of train patients -> val without val.txt."""

from __future__ import annotations

from pathlib import Path

from ..adapters.covidx import COVIDx
from .study import Collected, Study, label_row, safe_id

#: COVIDx label -> project findings (both pneumonia kinds are airspace opacity).
LABEL_MAP: dict[str, tuple[str, ...]] = {
    "normal": (),
    "negative": (),
    "pneumonia": ("consolidation",),
    "covid-19": ("consolidation",),
    "positive": ("consolidation",),
}


def collect(src: Path, val_share: float = 0.1) -> Collected:
    """Every listed image with its label (:data:`LABEL_MAP`; another label is an error naming the file)."""
    if not 0.0 < float(val_share) < 1.0:
        raise ValueError(f"val_share must lie in (0, 1), got {val_share}")
    has_val = (src / "val.txt").exists()
    files = [("train", None if not has_val else "train"), ("test", "test")] + (
        [("val", "val")] if has_val else []
    )
    out = Collected(
        [],
        {},
        [src / f"{name}.txt" for name, _ in files],
        {"fractions": {"train": 1.0 - val_share, "val": val_share}},
        {"consolidation": ["pneumonia", "COVID-19", "positive"]},
        {"cls": ["consolidation"]},
    )
    for name, fixed in files:
        ds = COVIDx(src, split=name)
        path = src / f"{name}.txt"
        unknown = sorted(set(ds.class_names) - set(LABEL_MAP))
        if unknown:
            raise ValueError(f"{path}: unknown label(s) {unknown}; expected some of {sorted(LABEL_MAP)}")
        for k, v in ds.dropped.items():
            out.dropped[k] = out.dropped.get(k, 0) + v
        for r in ds.records:
            label = ds.class_names[r["label"]]
            out.studies.append(
                Study(
                    sample_id=safe_id(f"{name}_{Path(r['sample_id']).stem}"),
                    image_path=r["image_path"],
                    labels=label_row(*LABEL_MAP[label]),
                    group=r["patient_id"],
                    split=fixed,
                    source_label=label,
                )
            )
    return out
