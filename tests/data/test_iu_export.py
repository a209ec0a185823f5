"""The IU track written to disk reads back like a synthetic dataset folder."""

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from sista_kit.data import iu
from sista_kit.data.synthetic import LOCALISED
from sista_kit.data.synthetic.export import SPLITS, label_map, load_dataset, read_manifest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchxrayvision") is None, reason="torchxrayvision (IU reports) not installed"
)


@pytest.fixture(scope="module")
def iu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("iu") / "ds"
    return iu.write_iu_dataset(root, seed=1, image_size=32, limit=40, workers=1, progress=False)


def test_layout_splits_and_readers(iu_root):
    meta = json.loads((iu_root / "meta.json").read_text())
    assert meta["track"] == "iu" and meta["n"] == 40 and meta["image_size"] == 32
    rows = read_manifest(iu_root)
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40
    for split in SPLITS:
        ids = (iu_root / "splits" / f"{split}.txt").read_text().split()
        assert ids, f"split {split} is empty"
        assert ids == [r["id"] for r in read_manifest(iu_root, split)]
        coco = json.loads((iu_root / "annotations" / f"det_{split}.json").read_text())
        assert [c["name"] for c in coco["categories"]] == list(LOCALISED)
        assert [im["sample_id"] for im in coco["images"]] == ids
    samples = load_dataset(iu_root)
    mem = iu.generate_iu(seed=1, image_size=32, limit=40)
    assert [s.sample_id for s in samples] == [s.sample_id for s in mem]
    for a, b in zip(samples, mem, strict=True):
        assert a.image.shape == (32, 32) and (a.image == b.image).all() and (a.maskbits == b.maskbits).all()
        assert a.report == b.report and (a.labels == b.labels).all() and a.boxes == b.boxes
        assert a.spans == b.spans and a.negated == b.negated
        for k in range(len(a.labels)):
            assert bool(a.masks[k].any()) == bool(a.labels[k])
    lm = np.asarray(Image.open(iu_root / rows[0]["mask"]))
    assert (lm == label_map(mem[0].maskbits)).all()
    assert any(r["finding_key"] != "normal" for r in rows)


def test_pretrain_dataset_reads_it(iu_root, tokenizer):
    from sista_kit.data import PretrainDataset, collate_pretrain

    ds = PretrainDataset(iu_root, tokenizer, max_length=64, split="pretrain", return_masks=True)
    batch = collate_pretrain([ds[0], ds[1]])
    assert batch["image"].shape[-2:] == (32, 32) and batch["input_ids"].shape[0] == 2


def test_downstream_classification_loader_reads_it(iu_root):
    from sista_kit.downstream.cls_data import load_cls_splits

    out = load_cls_splits(iu_root)
    assert set(out) == {"train", "val", "test"}
    n = sum(len(out[s].labels) for s in out)
    assert n == len(read_manifest(iu_root)) - len(read_manifest(iu_root, "pretrain"))
    assert out["train"].images.shape[1:] == (1, 32, 32)


def test_idempotent_and_different_dataset_refused(iu_root):
    mtime = (iu_root / "manifest.jsonl").stat().st_mtime_ns
    iu.write_iu_dataset(iu_root, seed=1, image_size=32, limit=40, workers=1, progress=False)
    assert (iu_root / "manifest.jsonl").stat().st_mtime_ns == mtime
    with pytest.raises(FileExistsError, match="overwrite=True"):
        iu.write_iu_dataset(iu_root, seed=1, image_size=32, limit=41, workers=1, progress=False)


def test_images_of_a_report_share_a_split(tmp_path):
    root = iu.write_iu_dataset(
        tmp_path / "ds", seed=0, image_size=32, limit=12, images_per_report=2, workers=2, progress=False
    )
    rows = read_manifest(root)
    assert len(rows) == 24
    by_report: dict[str, set[str]] = {}
    for r in rows:
        by_report.setdefault(r["id"].rsplit("_", 1)[0], set()).add(r["split"])
    assert len(by_report) == 12 and all(len(v) == 1 for v in by_report.values())
    for r in rows:
        assert (root / r["image"]).is_file() and (root / r["findings_mask"]).is_file()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="images_per_report"):
        iu.write_iu_dataset(tmp_path / "a", images_per_report=0, progress=False)
    with pytest.raises(ValueError, match="image_size"):
        iu.write_iu_dataset(tmp_path / "b", image_size=16, progress=False)
    with pytest.raises(ValueError, match="limit"):
        iu.generate_iu(limit=0)
