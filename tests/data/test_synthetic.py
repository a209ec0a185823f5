import hashlib
import json

import numpy as np
import pytest

from sista_kit.data.synthetic import (
    CLASS_NAMES,
    LOCALISED,
    generate,
    label_fraction,
    load_dataset,
    write_dataset,
)
from sista_kit.data.synthetic.export import label_map, read_manifest
from sista_kit.data.synthetic.report import word_offsets


def _digest(samples):
    h = hashlib.sha256()
    for s in samples:
        h.update(s.image.tobytes())
        h.update(s.maskbits.tobytes())
        h.update(s.report.encode())
        h.update(repr((s.boxes, s.spans, s.negated)).encode())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(small_samples):
    again = generate(96, seed=3, image_size=64)
    assert _digest(again) == _digest(small_samples)
    assert _digest(generate(96, seed=4, image_size=64)) != _digest(small_samples)


def test_prefix_property():
    # study i depends only on (seed, i, image_size), not on how many are generated
    a, b = generate(10, seed=1, image_size=64), generate(40, seed=1, image_size=64)
    assert _digest(a) == _digest(b[:10])


def test_labels_masks_boxes_consistent(small_samples):
    loc = {CLASS_NAMES.index(n) for n in LOCALISED}
    for s in small_samples:
        h, w = s.image.shape
        masks = s.masks
        assert s.image.dtype == np.uint8 and masks.shape == (len(CLASS_NAMES), h, w)
        for k in range(len(CLASS_NAMES)):
            assert bool(masks[k].any()) == bool(s.labels[k]), (s.sample_id, CLASS_NAMES[k])
        boxed = {b[0] for b in s.boxes}
        assert boxed == {k for k in loc if s.labels[k]}
        for k, x0, y0, x1, y1 in s.boxes:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert masks[k, y0:y1, x0:x1].any()
        key = ",".join(sorted(CLASS_NAMES[k] for k in np.flatnonzero(s.labels))) or "normal"
        assert s.finding_key == key


def test_word_spans_point_at_their_finding_and_negations_absent(small_samples):
    from sista_kit.data.synthetic import vocabulary as V

    cues = {  # words that must occur in a span of each finding
        "consolidation": {"consolidation", "opacity", "airspace", "infiltrate", "opacification"},
        "nodule": {"nodule", "nodular", "mass", "masslike", "opacity", "density"},
        "effusion": {"effusion", "effusions", "fluid", "costophrenic"},
        "pneumothorax": {"pneumothorax"},
        "cardiomegaly": {"cardiomegaly", "enlarged", "enlargement"},
        "atelectasis": {"atelectasis", "atelectatic", "volume"},
        "edema": {"edema", "congestion"},
    }
    assert V.NEGATIONS  # templates exist
    for s in small_samples:
        words = [s.report.lower()[a:b] for a, b in word_offsets(s.report)]
        for k, a, b in s.spans:
            assert s.labels[k] == 1 and 0 <= a < b <= len(words)
            assert cues[CLASS_NAMES[k]] & set(words[a:b]), (CLASS_NAMES[k], words[a:b])
        assert {k for k, _, _ in s.spans} == set(np.flatnonzero(s.labels).tolist())
        for k in s.negated:
            assert s.labels[k] == 0
    assert sum(len(s.negated) for s in small_samples) > len(small_samples) // 2


def test_report_diversity_and_normal_share(small_samples):
    assert len({s.report for s in small_samples}) == len(small_samples)
    by_key = {}
    for s in generate(400, seed=5, image_size=32):
        by_key.setdefault(s.finding_key, []).append(s.report)
    normal = by_key["normal"]
    assert 0.2 < len(normal) / 400 < 0.45
    assert len(set(normal)) > 0.9 * len(normal)
    assert len(by_key) > 15


def test_label_fraction():
    ids = [f"s{i}" for i in range(1000)]
    strata = ["normal" if i % 3 == 0 else f"k{i % 7}" for i in range(1000)]
    one = label_fraction(ids, 0.01, seed=0, strata=strata)
    ten = label_fraction(ids, 0.10, seed=0, strata=strata)
    assert len(one) == 10 and len(ten) == 100
    assert set(one) <= set(ten)
    assert label_fraction(ids, 0.1, seed=0, strata=strata) == ten
    assert label_fraction(ids, 0.1, seed=1, strata=strata) != ten
    assert label_fraction(ids[:10], 0.01, seed=0) == label_fraction(ids[:10], 0.01, seed=0)
    assert len(label_fraction(ids[:10], 0.01, seed=0)) == 1
    normal_share = sum(strata[int(i[1:])] == "normal" for i in ten) / 100
    assert abs(normal_share - 1 / 3) < 0.03
    with pytest.raises(ValueError):
        label_fraction(ids, 0.0)


def test_write_dataset_layout_and_idempotent(tmp_path):
    root = write_dataset(tmp_path / "ds", 40, seed=2, image_size=48, workers=1, progress=False)
    meta = json.loads((root / "meta.json").read_text())
    assert meta["n"] == 40
    rows = read_manifest(root)
    assert len(rows) == 40
    ids = sum(
        ((root / "splits" / f"{s}.txt").read_text().split() for s in ("pretrain", "train", "val", "test")), []
    )
    assert sorted(ids) == sorted(r["id"] for r in rows)
    coco = json.loads((root / "annotations" / "det_pretrain.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(LOCALISED)
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and x + w <= 48 and y + h <= 48
    loaded = load_dataset(root)
    mem = generate(40, seed=2, image_size=48)
    assert _digest(loaded) == _digest(mem)
    lm = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(root / rows[0]["mask"]))
    assert (lm == label_map(mem[0].maskbits)).all() and lm.max() <= len(LOCALISED)
    mtime = (root / "manifest.jsonl").stat().st_mtime_ns
    write_dataset(root, 40, seed=2, image_size=48, workers=1, progress=False)
    assert (root / "manifest.jsonl").stat().st_mtime_ns == mtime
    with pytest.raises(FileExistsError):
        write_dataset(root, 41, seed=2, image_size=48, workers=1, progress=False)


def test_missing_folder_and_bad_args(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        read_manifest(tmp_path)
    with pytest.raises(ValueError):
        generate(0)


def test_writing_an_empty_dataset_is_an_error(tmp_path):
    from sista_kit.data.synthetic import write_dataset

    with pytest.raises(ValueError, match="no studies to write"):
        write_dataset(tmp_path / "empty", n=0, progress=False)
    assert not (tmp_path / "empty" / "meta.json").exists()


def test_synthetic_folder_name_records_non_default_splits():
    from sista_kit.data.folder import DEFAULT_SPLIT_FRACTIONS, synthetic_folder_name

    assert synthetic_folder_name(3000, 0, 64) == "synthetic-n3000-s0-64"
    assert synthetic_folder_name(3000, 0, 64, dict(DEFAULT_SPLIT_FRACTIONS)) == "synthetic-n3000-s0-64"
    splits = {"pretrain": 0.925, "train": 0.0375, "val": 0.0125, "test": 0.025}
    assert synthetic_folder_name(12000, 0, 64, splits) == "synthetic-n12000-s0-64-split925-38-12-25"
