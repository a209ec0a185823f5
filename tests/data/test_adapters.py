"""Tiny fixtures in the official formats of each real dataset."""

import gzip
import shutil

import numpy as np
import pytest
from PIL import Image

from sista_kit.data.adapters import (
    CHEXPERT_LABELS,
    CheXpert,
    COVIDx,
    MimicCXR,
    ObjectCXR,
    RSNAPneumonia,
    SIIMPneumothorax,
    parse_annotation,
    read_image,
    rle_decode,
    section_report,
)


def _jpg(path, size=(20, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.arange(size[0] * size[1]) % 255).astype(np.uint8).reshape(size[1], size[0])).save(
        path
    )


def _dcm(path):
    from pydicom.data import get_testdata_file

    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(get_testdata_file("CT_small.dcm"), path)


def test_chexpert(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_LABELS)
    rows = [
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0",
        "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,",
        "CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg,Female,87,Lateral,,,,-1.0,1.0,,,,,,,,,,",
    ]
    root.mkdir()
    (root / "train.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    _jpg(root / "train/patient00001/study1/view1_frontal.jpg")
    _jpg(root / "train/patient00002/study2/view1_frontal.jpg")
    ds = CheXpert(root, uncertainty="ones")
    assert len(ds) == 2 and ds.dropped == {"lateral_view": 1}
    item = ds[1]
    assert item["image"].shape == (16, 20) and item["image"].dtype == np.uint8
    card = CHEXPERT_LABELS.index("Cardiomegaly")
    assert item["labels"][card] == 1.0
    assert CheXpert(root, uncertainty="zeros")[1]["labels"][card] == 0.0
    assert np.isnan(CheXpert(root, uncertainty="ignore")[1]["labels"][card])
    with pytest.raises(ValueError, match="uncertainty"):
        CheXpert(root, uncertainty="maybe")
    (root / "valid.csv").write_text("Path,Sex\nx.jpg,Male\n")
    with pytest.raises(ValueError, match="valid.csv.*lacks"):
        CheXpert(root, split="valid")


def _gz(path, text):
    with gzip.open(path, "wt") as fh:
        fh.write(text)


def test_mimic(tmp_path):
    root = tmp_path / "mimic"
    root.mkdir()
    _gz(
        root / "mimic-cxr-2.0.0-metadata.csv.gz",
        "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns\n"
        "d1,10000032,50414267,CHEST (PA AND LAT),PA,3056,2544\n"
        "d2,10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544\n"
        "d3,10000033,50414268,CHEST (PORTABLE AP),AP,3056,2544\n",
    )
    _gz(
        root / "mimic-cxr-2.0.0-split.csv.gz",
        "dicom_id,study_id,subject_id,split\nd1,50414267,10000032,train\nd2,50414267,10000032,train\n"
        "d3,50414268,10000033,test\n",
    )
    _gz(
        root / "mimic-cxr-2.0.0-chexpert.csv.gz",
        "subject_id,study_id," + ",".join(CHEXPERT_LABELS) + "\n10000032,50414267,,,1.0,,,,,,,,-1.0,,,\n",
    )
    rdir = root / "files/p10/p10000032"
    rdir.mkdir(parents=True)
    (rdir / "s50414267.txt").write_text(
        "                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n"
        " INDICATION:  cough\n\n FINDINGS:  The heart is mildly enlarged.\n No pleural effusion.\n\n"
        " IMPRESSION:  Mild cardiomegaly.\n"
    )
    _jpg(rdir / "s50414267/d1.jpg")
    ds = MimicCXR(root, split="train")
    assert len(ds) == 1 and ds.dropped == {"other_split": 1, "not_frontal": 1}
    item = ds[0]
    assert (
        item["report"]
        == "FINDINGS: The heart is mildly enlarged. No pleural effusion. IMPRESSION: Mild cardiomegaly."
    )
    assert item["labels"][CHEXPERT_LABELS.index("Cardiomegaly")] == 1.0
    assert item["image"].shape == (16, 20)
    with pytest.raises(ValueError, match=r"MIMIC-CXR: no samples .*split='test'.*'no_report': 1"):
        MimicCXR(root, split="test")  # an empty dataset is an error, not 0 samples
    assert section_report("FINDINGS: a\nIMPRESSION: b")["IMPRESSION"] == "b"
    (root / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match="mimic-cxr-2.0.0-split.csv"):
        MimicCXR(root)


def test_rsna_boxes_and_dicom(tmp_path):
    (tmp_path / "stage_2_train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\n"
        "0004cfab-14fd-4e49-80ba-63a80b6bddd6,,,,,0\n"
        "00436515-870c-4b36-a041-de91049b9ab4,264.0,152.0,213.0,379.0,1\n"
        "00436515-870c-4b36-a041-de91049b9ab4,562.0,152.0,256.0,453.0,1\n"
    )
    for pid in ("0004cfab-14fd-4e49-80ba-63a80b6bddd6", "00436515-870c-4b36-a041-de91049b9ab4"):
        _dcm(tmp_path / "stage_2_train_images" / f"{pid}.dcm")
    ds = RSNAPneumonia(tmp_path)
    assert len(ds) == 2
    pos = ds[1]
    assert pos["label"] == 1 and pos["boxes"].tolist() == [[264, 152, 477, 531], [562, 152, 818, 605]]
    assert ds[0]["boxes"].shape == (0, 4)
    assert pos["image"].dtype == np.uint8 and pos["image"].shape == (128, 128)
    (tmp_path / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\np,1,2,x,4,1\n")
    with pytest.raises(ValueError, match="stage_2_train_labels.csv.*not a number"):
        RSNAPneumonia(tmp_path)


def test_corrupt_dicom_names_file(tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\x00" * 50)
    with pytest.raises(ValueError, match="broken.dcm"):
        read_image(bad)
    with pytest.raises(FileNotFoundError, match="absent.jpg"):
        read_image(tmp_path / "absent.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.jpg"):
        read_image(tmp_path / "bad.jpg")


def _encode(mask):
    """Reference SIIM encoder (column-major, relative offsets)."""
    flat = mask.T.ravel().astype(np.int8)
    d = np.diff(np.concatenate([[0], flat, [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    out, prev = [], 0
    for s, e in zip(starts, ends, strict=True):
        out += [s - prev, e - s]
        prev = e
    return " ".join(map(str, out))


def test_siim_rle(tmp_path):
    rng = np.random.default_rng(0)
    m = np.zeros((128, 128), dtype=bool)
    m[30:60, 40:45] = True
    m[100, 3:90] = True
    m |= rng.random((128, 128)) > 0.995
    assert (rle_decode(_encode(m), 128, 128) == m).all()
    assert not rle_decode("-1", 128, 128).any()
    iid = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819"
    (tmp_path / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{iid}, {_encode(m)}\nmissing.id, -1\n")
    _dcm(tmp_path / "dicom-images-train" / "study" / "series" / f"{iid}.dcm")
    ds = SIIMPneumothorax(tmp_path)
    assert len(ds) == 1 and ds.dropped == {"no_dicom": 1}
    item = ds[0]
    assert item["label"] == 1 and (item["mask"] == m).all()
    (tmp_path / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{iid}, 5 3 99999 4\n")
    with pytest.raises(ValueError, match="train-rle.csv"):
        SIIMPneumothorax(tmp_path)[0]


def test_covidx(tmp_path):
    (tmp_path / "train.txt").write_text(
        "419639-003251 MIDRC-RICORD-1C-419639-003251-46647-0.png positive ricord\n"
        "ABC img2.png negative rsna\n\n"
    )
    _jpg(tmp_path / "train" / "img2.png")
    ds = COVIDx(tmp_path)
    assert ds.class_names == ("negative", "positive") and len(ds) == 2 and ds.dropped == {"blank_line": 1}
    assert ds[1]["label"] == 0 and ds[1]["image"].shape == (16, 20)
    with pytest.raises(FileNotFoundError, match="MIDRC"):
        ds[0]
    (tmp_path / "test.txt").write_text("onlyonefield\n")
    with pytest.raises(ValueError, match="test.txt line 1"):
        COVIDx(tmp_path, split="test")


def test_object_cxr(tmp_path):
    (tmp_path / "dev.csv").write_text(
        'image_name,annotation\n08001.jpg,"0 1029 1467 1093 1650;1 800 900 850 960"\n08002.jpg,\n'
        '08003.jpg,"2 10 10 30 12 20 40"\n'
    )
    for n in ("08001", "08002", "08003"):
        _jpg(tmp_path / "dev" / f"{n}.jpg")
    ds = ObjectCXR(tmp_path, split="dev")
    assert ds[0]["boxes"].tolist() == [[1029, 1467, 1093, 1650], [800, 900, 850, 960]]
    assert ds[1]["label"] == 0 and ds[2]["boxes"].tolist() == [[10, 10, 30, 40]]
    with pytest.raises(ValueError):
        parse_annotation("7 1 2 3 4")
    (tmp_path / "train.csv").write_text('image_name,annotation\na.jpg,"0 1 2 3"\n')
    with pytest.raises(ValueError, match="train.csv line 2"):
        ObjectCXR(tmp_path, split="train")


def test_section_aliases_and_last_paragraph():
    from sista_kit.data.adapters.mimic import last_paragraph, report_text

    text = " FINDINGS/IMPRESSION:  No acute process.\n IMPRESSON: Stable.\n"
    assert section_report(text) == {"IMPRESSION": "No acute process. Stable."}
    wet = "                FINAL REPORT\n\n WET READ: ___ no pneumothorax.\n\n FINDINGS:\n"
    assert report_text(section_report(wet)) == ""
    assert last_paragraph(wet) == "WET READ: ___ no pneumothorax."
    assert report_text(section_report(wet), last_paragraph(wet)) == "WET READ: ___ no pneumothorax."


def _chexpert_root(tmp_path, row):
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir(exist_ok=True)
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_LABELS)
    (root / "train.csv").write_text(header + "\n" + row + ("\n" if row else ""))
    return root


@pytest.mark.parametrize(
    ("row", "exc", "pattern"),
    [
        ("", ValueError, r"CheXpert: no samples in .*train.csv"),  # header-only CSV
        (
            "CheXpert-v1.0-small/train/p1/s1/v1.jpg,F,1,Frontal,AP,2" + "," * 13,
            ValueError,
            r"train.csv line 2 column 'No Finding': label values must be 1, 0, -1 or blank, got '2'",
        ),
        (
            "CheXpert-v1.0-small/train/p1/s1/v1.jpg,F,1,Frontal,AP,nan" + "," * 13,
            ValueError,
            r"train.csv line 2 column 'No Finding'.*got 'nan'",
        ),
        (
            "CheXpert-v1.0-small/../../secret.jpg,F,1,Frontal,AP" + "," * 14,
            ValueError,
            "outside the dataset root",
        ),
        ("/etc/passwd,F,1,Frontal,AP" + "," * 14, ValueError, "absolute path"),
    ],
)
def test_chexpert_bad_rows(tmp_path, row, exc, pattern):
    with pytest.raises(exc, match=pattern):
        CheXpert(_chexpert_root(tmp_path, row))


@pytest.mark.parametrize(
    ("rows", "pattern"),
    [
        ("p1,nan,152.0,213.0,379.0,1", r"line 2 x is not a finite number: 'nan'"),
        ("p1,1,2,inf,4,1", r"line 2 width is not a finite number"),
        ("p1,1,2,3,4,2", r"line 2: Target must be 0 or 1"),
        ("../../etc/p1,,,,,0", r"line 2 patientId: path .* resolves outside the dataset root"),
        ("", r"RSNA Pneumonia: no samples in .*stage_2_train_labels.csv"),
    ],
)
def test_rsna_bad_rows(tmp_path, rows, pattern):
    _dcm(tmp_path / "stage_2_train_images" / "p1.dcm")
    (tmp_path / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\n" + rows + "\n")
    with pytest.raises(ValueError, match=pattern):
        RSNAPneumonia(tmp_path)


def test_empty_image_folders_are_errors(tmp_path):
    (tmp_path / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\np1,,,,,0\n")
    (tmp_path / "stage_2_train_images").mkdir()
    with pytest.raises(FileNotFoundError, match="no DICOM"):
        RSNAPneumonia(tmp_path)
    (tmp_path / "train-rle.csv").write_text("ImageId, EncodedPixels\nx, -1\n")
    (tmp_path / "dicom-images-train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no DICOM .* under"):
        SIIMPneumothorax(tmp_path)


def test_covidx_and_object_cxr_refuse_empty_and_escaping(tmp_path):
    (tmp_path / "train.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=r"COVIDx: no samples in .*train.txt.*blank_line"):
        COVIDx(tmp_path)
    (tmp_path / "train.txt").write_text("p1 ../../x.png positive src\n")
    with pytest.raises(ValueError, match=r"train.txt line 1 filename: path '../../x.png' resolves outside"):
        COVIDx(tmp_path)
    (tmp_path / "dev.csv").write_text("image_name,annotation\n")
    with pytest.raises(ValueError, match="Object-CXR: no samples"):
        ObjectCXR(tmp_path, split="dev")
    (tmp_path / "dev.csv").write_text("image_name,annotation\n../x.jpg,\n")
    with pytest.raises(ValueError, match="dev.csv line 2 image_name"):
        ObjectCXR(tmp_path, split="dev")


def test_chexpert_renamed_root(tmp_path):
    root = _chexpert_root(tmp_path, "CheXpert-v1.0-small/train/p1/s1/v1.jpg,F,1,Frontal,AP,1.0" + "," * 13)
    renamed = root.rename(tmp_path / "chexpert")
    _jpg(renamed / "train/p1/s1/v1.jpg")
    assert CheXpert(renamed)[0]["image"].shape == (16, 20)
