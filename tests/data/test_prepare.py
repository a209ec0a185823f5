"""The prepare command on tiny replicas of the official layouts: folder layout, counted drops, named
errors, idempotence and resumption."""

from __future__ import annotations

import json

import numpy as np
import pytest
import replicas
from PIL import Image

from sista_kit.data.prepare import DATASETS, prepare
from sista_kit.data.prepare import core as prepare_core
from sista_kit.data.prepare import stage as prepare_stage
from sista_kit.data.prepare.cli import main as cli_main
from sista_kit.data.synthetic.export import SPLITS, read_manifest

SIZE = 48


def _src(name: str, root):
    """(src folder, reader options) of a fresh replica of ``name`` under ``root``."""
    if name == "mimic-cxr":
        jpg, rep = replicas.mimic(root / "raw")
        return jpg, {"reports": str(rep), "probe_fraction": 0.3}
    build = {
        "chexpert": replicas.chexpert,
        "rsna": replicas.rsna,
        "siim": replicas.siim,
        "covidx": replicas.covidx,
        "object-cxr": replicas.object_cxr,
    }[name]
    return build(root / "raw"), {}


#: Rows each replica must drop, by reason (see tests/data/replicas.py).
EXPECTED_DROPS = {
    "mimic-cxr": {
        "corrupt_image": 1,
        "empty_report": 1,
        "no_report_file": 1,
        "not_frontal": 10,
        "short_report": 1,
    },
    "chexpert": {"lateral_view": 6},
    "rsna": {"corrupt_image": 1},
    "siim": {"no_dicom": 1},
    "covidx": {"blank_line": 2},
    "object-cxr": {},
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Every dataset prepared once: name -> (src, out)."""
    out = {}
    for name in DATASETS:
        root = tmp_path_factory.mktemp(name.replace("-", "_"))
        src, opts = _src(name, root)
        out[name] = (src, prepare(name, src, root / "out", image_size=SIZE, progress=False, **opts), opts)
    return out


@pytest.mark.parametrize("name", list(DATASETS))
def test_layout_and_drops(prepared, name):
    src, out, _ = prepared[name]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dropped"] == EXPECTED_DROPS[name]
    rows = read_manifest(out)
    assert len(rows) == meta["n"] == sum(meta["split_counts"].values())
    for split in SPLITS:
        ids = (out / "splits" / f"{split}.txt").read_text().split()
        assert ids == [r["id"] for r in rows if r["split"] == split]
        coco = json.loads((out / "annotations" / f"det_{split}.json").read_text())
        assert len(coco["images"]) == len(ids)
    for split in ("train", "test"):
        assert meta["split_counts"][split] > 0
    assert (meta["split_counts"]["pretrain"] > 0) == (name == "mimic-cxr")
    for r in rows[:5]:
        with Image.open(out / r["image"]) as im:
            assert im.size == (SIZE, SIZE) and im.mode == "L"
        assert len(r["labels"]) == len(meta["class_names"])
    # label-fraction files: nested subsets of the training split
    train = (out / "splits" / "train.txt").read_text().split()
    f10 = set((out / "splits" / "label_fractions" / "train_f0.1_s0.txt").read_text().split())
    f1 = (out / "splits" / "label_fractions" / "train_f1_s0.txt").read_text().split()
    assert f1 == train and f10 <= set(train) and len(f10) == max(1, round(0.1 * len(train)))
    # checksums of everything read and written
    sums = json.loads((out / "checksums.json").read_text())
    assert set(meta["request"]["inputs"]) <= set(sums["read"])
    assert len(sums["read"]) == len(meta["request"]["inputs"]) + meta["n"]
    first = next(iter(sums["read"]))
    assert sums["read"][first] == prepare_stage.sha256_file(src / first)
    assert sums["written"]["manifest.jsonl"] == prepare_stage.sha256_file(out / "manifest.jsonl")
    assert not (out / ".prepare").exists()


def test_targets_reach_the_folder(prepared):
    """The localised target of each dataset is in its masks / boxes, and MIMIC keeps its reports."""
    _, siim, _ = prepared["siim"]
    rows = read_manifest(siim)
    pos = [r for r in rows if r["labels"][3] == 1]
    assert pos and all(b["finding"] == "pneumothorax" for r in pos for b in r["boxes"])
    with Image.open(siim / pos[0]["mask"]) as im:
        assert (np.asarray(im) == 4).any()  # label map value of pneumothorax (LOCALISED order + 1)
    _, rsna, _ = prepared["rsna"]
    coco = json.loads((rsna / "annotations" / "det_train.json").read_text())
    assert coco["annotations"] and {a["category_id"] for a in coco["annotations"]} == {1}
    _, mimic, _ = prepared["mimic-cxr"]
    reports = [r["report"] for r in read_manifest(mimic)]
    assert all(reports) and any(r.startswith("WET READ") for r in reports)  # last-paragraph fallback
    assert all("INDICATION" not in r for r in reports)


def test_idempotent_and_refuses_other_data(prepared, tmp_path):
    src, out, opts = prepared["covidx"]
    stamp = (out / "meta.json").stat().st_mtime_ns, (out / "manifest.jsonl").read_text()
    prepare("covidx", src, out, image_size=SIZE, progress=False, **opts)
    assert ((out / "meta.json").stat().st_mtime_ns, (out / "manifest.jsonl").read_text()) == stamp
    with pytest.raises(FileExistsError, match="different dataset"):
        prepare("covidx", src, out, image_size=SIZE + 16, progress=False)


def test_resumes_after_interruption(tmp_path, monkeypatch):
    src, _ = _src("rsna", tmp_path)
    out = tmp_path / "out"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_core, "export_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare("rsna", src, out, image_size=SIZE, progress=False)
    assert not (out / "meta.json").exists() and (out / ".prepare" / "records.jsonl").exists()
    monkeypatch.undo()
    calls = []
    real = prepare_stage.stage_one
    monkeypatch.setattr(prepare_stage, "stage_one", lambda *a: calls.append(a) or real(*a))
    prepare("rsna", src, out, image_size=SIZE, progress=False)
    assert calls == [] and len(read_manifest(out)) == 39


def test_overwrite_replaces_a_different_dataset(tmp_path):
    src, _ = _src("object-cxr", tmp_path)
    out = tmp_path / "out"
    prepare("object-cxr", src, out, image_size=SIZE, progress=False)
    prepare("object-cxr", src, out, image_size=64, progress=False, overwrite=True)
    with Image.open(out / read_manifest(out)[0]["image"]) as im:
        assert im.size == (64, 64)


def _chexpert_csv(src, edit):
    path = src / "train.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _cell(line: str, index: int, value: str) -> str:
    cells = line.split(",")
    cells[index] = value
    return ",".join(cells)


BAD_INPUTS = [
    # (dataset, how to break the replica, error type, message pattern)
    (
        "chexpert",
        lambda s: _chexpert_csv(s, lambda ls: [ls[0].replace(",Edema", ",Oedema"), *ls[1:]]),
        ValueError,
        r"train.csv lacks the column\(s\) \['Edema'\]",
    ),
    (
        "chexpert",
        lambda s: _chexpert_csv(s, lambda ls: [ls[0], _cell(ls[1], 5, "2"), *ls[2:]]),
        ValueError,
        r"train.csv line 2 column 'No Finding'.*got '2'",
    ),
    (
        "chexpert",
        lambda s: _chexpert_csv(s, lambda ls: ls[:1]),
        ValueError,
        r"CheXpert: no samples in .*train.csv",
    ),
    (
        "chexpert",
        lambda s: _chexpert_csv(
            s, lambda ls: [ls[0], ls[1].replace("train/patient", "../../etc/patient", 1)]
        ),
        ValueError,
        "outside the dataset root",
    ),
    ("chexpert", lambda s: (s / "valid.csv").unlink(), FileNotFoundError, "valid.csv"),
    (
        "rsna",
        lambda s: (s / "stage_2_train_labels.csv").write_text(
            "patientId,x,y,width,height,Target\n00000000-14fd-4e49-80ba-63a80b6bddd6,nan,1,2,3,1\n"
        ),
        ValueError,
        r"stage_2_train_labels.csv: line 2 x is not a finite number",
    ),
    (
        "rsna",
        lambda s: (s / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\n"),
        ValueError,
        "RSNA Pneumonia: no samples",
    ),
    (
        "rsna",
        lambda s: (s / "stage_2_train_labels.csv").write_text(
            "patientId,x,y,width,height,Target\n../../outside,,,,,0\n"
        ),
        ValueError,
        "outside the dataset root",
    ),
    (
        "rsna",
        lambda s: [p.unlink() for p in (s / "stage_2_train_images").glob("*.dcm")],
        FileNotFoundError,
        "no DICOM",
    ),
    (
        "rsna",
        lambda s: (s / "stage_2_train_labels.csv").unlink(),
        FileNotFoundError,
        "stage_2_train_labels.csv",
    ),
    (
        "siim",
        lambda s: [p.unlink() for p in (s / "dicom-images-train").rglob("*.dcm")],
        FileNotFoundError,
        "no DICOM",
    ),
    (
        "siim",
        lambda s: (s / "train-rle.csv").write_text("ImageId,Pixels\nx,-1\n"),
        ValueError,
        "EncodedPixels",
    ),
    (
        "covidx",
        lambda s: (s / "train.txt").write_text("\n\n"),
        ValueError,
        r"COVIDx: no samples in .*train.txt",
    ),
    (
        "covidx",
        lambda s: (s / "test.txt").write_text("p1 ../../../etc/passwd positive x\n"),
        ValueError,
        "outside the dataset root",
    ),
    (
        "covidx",
        lambda s: (s / "test.txt").write_text("p1 test-000.jpg maybe x\n"),
        ValueError,
        "unknown label",
    ),
    (
        "object-cxr",
        lambda s: (s / "dev.csv").write_text("image_name,annotation\n/etc/passwd,\n"),
        ValueError,
        "absolute path",
    ),
    ("object-cxr", lambda s: (s / "dev.csv").write_text("image_name\n08001.jpg\n"), ValueError, "annotation"),
    ("mimic-cxr", lambda s: (s / "mimic-cxr-2.0.0-split.csv.gz").unlink(), FileNotFoundError, "split.csv"),
    (
        "mimic-cxr",
        lambda s: replicas.write_gz(
            s / "mimic-cxr-2.0.0-metadata.csv.gz", "dicom_id,subject_id,study_id,ViewPosition\n"
        ),
        ValueError,
        "MIMIC-CXR: no samples",
    ),
    (
        "mimic-cxr",
        lambda s: replicas.write_gz(
            s / "mimic-cxr-2.0.0-metadata.csv.gz",
            "dicom_id,subject_id,study_id,ViewPosition\n0000aaaa-50000000,../../x,50000000,PA\n",
        ),
        ValueError,
        "malformed subject_id",
    ),
]


@pytest.mark.parametrize(
    ("name", "breakit", "exc", "pattern"), BAD_INPUTS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_bad_inputs_are_named_errors(tmp_path, name, breakit, exc, pattern):
    src, opts = _src(name, tmp_path)
    if name == "mimic-cxr":
        opts = {**opts}
    breakit(src)
    with pytest.raises(exc, match=pattern):
        prepare(name, src, tmp_path / "out", image_size=SIZE, progress=False, **opts)
    assert not (tmp_path / "out" / "meta.json").exists()


def test_bad_rle_names_file_and_image(tmp_path):
    src, _ = _src("siim", tmp_path)
    lines = (src / "train-rle.csv").read_text().splitlines()
    iid = lines[1].split(",")[0]
    (src / "train-rle.csv").write_text(f"{lines[0]}\n{iid}, 5 3 99999 4\n")
    with pytest.raises(ValueError, match=f"bad EncodedPixels for {iid}"):
        prepare("siim", src, tmp_path / "out", image_size=SIZE, progress=False)


def test_cli(tmp_path, capsys):
    src = replicas.covidx(tmp_path / "raw")
    assert (
        cli_main(
            [
                "covidx",
                "--src",
                str(src),
                "--out",
                str(tmp_path / "out"),
                "--image-size",
                "40",
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(read_manifest(tmp_path / "out")) == 48
    assert cli_main(["rsna", "--src", str(tmp_path / "absent"), "--out", str(tmp_path / "o2")]) == 2
    assert "absent is not a folder" in capsys.readouterr().err
    assert cli_main(["covidx", "--src", str(src), "--out", str(src / "inside")]) == 2
    with pytest.raises(SystemExit):
        cli_main(["chexpert", "--src", str(src), "--out", str(tmp_path / "o3"), "--uncertainty", "maybe"])
    with pytest.raises(SystemExit):
        cli_main(["imagenet", "--src", str(src), "--out", str(tmp_path / "o4")])


def test_pretrain_dataset_drops_empty_reports(prepared, small_samples, tokenizer, caplog):
    """One empty report is dropped, counted and named by study id; a split with none left is an error."""
    import dataclasses

    from sista_kit.data import PretrainDataset

    samples = [
        dataclasses.replace(s, report=" " if i == 1 else s.report) for i, s in enumerate(small_samples[:4])
    ]
    ds = PretrainDataset(samples, tokenizer, max_length=32)
    assert len(ds) == 3 and ds.dropped_ids == [samples[1].sample_id]
    assert samples[1].sample_id in caplog.text
    with pytest.raises(ValueError, match="all 2 reports are empty"):
        PretrainDataset([dataclasses.replace(s, report="") for s in samples[:2]], tokenizer)
    _, chexpert, _ = prepared["chexpert"]
    with pytest.raises(ValueError, match=r"no samples in .*split='train'.*reports are empty"):
        PretrainDataset(chexpert, tokenizer, split="train")
    _, mimic, _ = prepared["mimic-cxr"]
    assert (
        len(PretrainDataset(mimic, tokenizer, split="pretrain"))
        == json.loads((mimic / "meta.json").read_text())["split_counts"]["pretrain"]
    )


def test_workers_do_not_change_the_folder(tmp_path):
    src, _ = _src("siim", tmp_path)
    one = prepare("siim", src, tmp_path / "one", image_size=SIZE, progress=False, workers=1)
    two = prepare("siim", src, tmp_path / "two", image_size=SIZE, progress=False, workers=2)
    assert (one / "manifest.jsonl").read_text() == (two / "manifest.jsonl").read_text()
    sums = [json.loads((d / "checksums.json").read_text())["written"] for d in (one, two)]
    assert sums[0] == sums[1]
