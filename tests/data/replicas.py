"""Tiny replicas of the official layouts of the six public datasets (as downloaded), for the prepare tests.

Every replica holds a few dozen studies with images whose content follows the labels (a bright blob where
a box or mask is), and the hostile rows each dataset can have: a corrupt image, a missing file, lateral
views, empty and short reports. Images are small (the prepare step resizes them anyway).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

CHEXPERT_COLUMNS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
SIZE = (96, 80)
CHEXPERT_POSITIVES = (
    "Cardiomegaly",
    "Edema",
    "Consolidation",
    "Atelectasis",
    "Pleural Effusion",
    "Lung Lesion",
    "Pneumothorax",
)  # source width, height (the real images are 1024 px and more)


def radiograph(rng: np.random.Generator, boxes=(), mask=None, size=None) -> np.ndarray:
    """uint8 (H, W): a noisy chest-like gradient with bright regions at ``boxes`` / ``mask``."""
    w, h = size or SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    img = 60 + 80 * np.exp(-(((xx - w / 2) / (0.35 * w)) ** 2)) + rng.normal(0, 8, (h, w))
    for x0, y0, x1, y1 in boxes:
        img[int(y0) : int(y1), int(x0) : int(x1)] += 90
    if mask is not None:
        img[mask] += 90
    return np.clip(img, 0, 255).astype(np.uint8)


def write_png(path: Path, img: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format=fmt)


def write_dicom(path: Path, img: np.ndarray, monochrome1: bool = False) -> None:
    """A minimal valid DICOM (16-bit MONOCHROME2 or MONOCHROME1) written with pydicom."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.Modality = path.stem[:16], "CR"
    pix = img.astype(np.uint16) * 16  # 12-bit range, as radiographs are stored
    if monochrome1:
        pix = 4095 - pix
    ds.Rows, ds.Columns = pix.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pix.tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        fh.write(text)


def rle_encode(mask: np.ndarray) -> str:
    """SIIM's relative run-length encoding (column-major; pairs of offset from the last run's end, length)."""
    flat = mask.T.ravel().astype(np.int8)
    d = np.diff(np.concatenate([[0], flat, [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    out, prev = [], 0
    for s, e in zip(starts, ends, strict=True):
        out += [s - prev, e - s]
        prev = e
    return " ".join(map(str, out)) if out else "-1"


def _box(rng: np.random.Generator, size=None) -> list[float]:
    w, h = size or SIZE
    x0, y0 = rng.uniform(0.1 * w, 0.55 * w), rng.uniform(0.15 * h, 0.55 * h)
    return [x0, y0, x0 + rng.uniform(0.15, 0.3) * w, y0 + rng.uniform(0.15, 0.3) * h]


# --- MIMIC-CXR-JPG + MIMIC-CXR reports ---------------------------------------------------------------

_FINDINGS = {
    "Cardiomegaly": "The heart is enlarged.",
    "Pleural Effusion": "There is a moderate left pleural effusion.",
    "Consolidation": "Consolidation is seen in the right lower lobe.",
    "Edema": "There is mild pulmonary edema.",
    "Atelectasis": "Bibasilar atelectasis is present.",
    "Lung Lesion": "A nodule is seen in the right upper lobe.",
    "Pneumothorax": "There is a small right apical pneumothorax.",
}


def mimic(root: Path, n: int = 48, seed: int = 0) -> tuple[Path, Path]:
    """MIMIC-CXR-JPG under ``root/jpg`` and the report text files under ``root/reports``.

    Hostile rows: one lateral view per fifth study, study 1 has an empty report (header only), study 2 a
    one-word impression, study 3 no report file, study 4's image is corrupt, study 5 has only a WET READ
    paragraph (the last-paragraph fallback keeps it).
    """
    rng = np.random.default_rng(seed)
    jpg, rep = root / "jpg", root / "reports"
    meta = ["dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns"]
    split = ["dicom_id,study_id,subject_id,split"]
    chex = ["subject_id,study_id," + ",".join(CHEXPERT_COLUMNS)]
    for i in range(n):
        sub, st = f"1{i // 2:07d}", f"5{i:07d}"
        sp = "train" if i % 7 < 5 else ("validate" if i % 7 == 5 else "test")
        pos = [c for j, c in enumerate(_FINDINGS) if rng.random() < 0.35 or (i % 5 == j)]
        rel = Path("files") / f"p{sub[:2]}" / f"p{sub}"
        boxes = [_box(rng) for _ in pos]
        dicoms = [(f"{i:04d}aaaa-{st}", "PA" if i % 2 else "AP")] + (
            [(f"{i:04d}bbbb-{st}", "LATERAL")] if i % 5 == 0 else []
        )
        for did, view in dicoms:
            meta.append(f"{did},{sub},{st},CHEST (PA AND LAT),{view},{SIZE[1]},{SIZE[0]}")
            split.append(f"{did},{st},{sub},{sp}")
            path = jpg / rel / f"s{st}" / f"{did}.jpg"
            if i == 4 and view != "LATERAL":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\xff\xd8\xff not really a jpeg")
            else:
                write_png(path, radiograph(rng, boxes), "JPEG")
        vals = ["" for _ in CHEXPERT_COLUMNS]
        for c in pos:
            vals[CHEXPERT_COLUMNS.index(c)] = "1.0" if rng.random() > 0.2 else "-1.0"
        if not pos:
            vals[0] = "1.0"
        chex.append(f"{sub},{st}," + ",".join(vals))
        findings = " ".join(_FINDINGS[c] for c in pos) or "The lungs are clear. No pleural effusion."
        impression = "No acute cardiopulmonary process." if not pos else f"{pos[0]} as described."
        text = (
            f"                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n"
            f" INDICATION:  ___ with cough\n\n FINDINGS:  {findings}\n\n IMPRESSION:  {impression}\n"
        )
        if i == 1:
            text = "                                 FINAL REPORT\n EXAMINATION:  CHEST\n\n FINDINGS:\n\n"
        elif i == 2:
            text = " FINDINGS:\n\n IMPRESSION:  Unchanged.\n"
        elif i == 5:
            text = f"                                 FINAL REPORT\n\n WET READ: ___ {findings}\n"
        if i != 3:
            (rep / rel).mkdir(parents=True, exist_ok=True)
            (rep / rel / f"s{st}.txt").write_text(text)
    write_gz(jpg / "mimic-cxr-2.0.0-metadata.csv.gz", "\n".join(meta) + "\n")
    write_gz(jpg / "mimic-cxr-2.0.0-split.csv.gz", "\n".join(split) + "\n")
    write_gz(jpg / "mimic-cxr-2.0.0-chexpert.csv.gz", "\n".join(chex) + "\n")
    return jpg, rep


# --- CheXpert -----------------------------------------------------------------------------------------


def chexpert(root: Path, n_train: int = 40, n_valid: int = 12, seed: int = 0) -> Path:
    """``CheXpert-v1.0-small`` with train.csv / valid.csv and JPEGs; every sixth train row is lateral."""
    rng = np.random.default_rng(seed)
    base = root / "CheXpert-v1.0-small"
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_COLUMNS)
    for split, n in (("train", n_train), ("valid", n_valid)):
        lines = [header]
        for i in range(n):
            pat = f"patient{(i // 2) + (0 if split == 'train' else 60000):05d}"
            lateral = split == "train" and i % 6 == 5
            view = "view2_lateral" if lateral else "view1_frontal"
            rel = f"{split}/{pat}/study{i % 2 + 1}/{view}.jpg"
            pos = [c for c in CHEXPERT_POSITIVES if rng.random() < 0.4]
            vals = []
            for c in CHEXPERT_COLUMNS:
                if c in pos:
                    vals.append("1.0" if rng.random() > 0.25 else "-1.0")
                elif c == "No Finding" and not pos:
                    vals.append("1.0")
                else:
                    vals.append("0.0" if rng.random() < 0.3 else "")
            lines.append(
                f"CheXpert-v1.0-small/{rel},Female,{40 + i},"
                + f"{'Lateral' if lateral else 'Frontal'},{'' if lateral else 'AP'},"
                + ",".join(vals)
            )
            write_png(base / rel, radiograph(rng, [_box(rng) for _ in pos]), "JPEG")
        (base / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return base


# --- RSNA Pneumonia -----------------------------------------------------------------------------------


def rsna(root: Path, n: int = 40, seed: int = 0) -> Path:
    """stage_2_train_labels.csv (one row per box, or a Target 0 row) and DICOM images; the last patient's
    DICOM is corrupt; every seventh image is MONOCHROME1."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lines = ["patientId,x,y,width,height,Target"]
    for i in range(n):
        pid = f"{i:08x}-14fd-4e49-80ba-63a80b6bddd6"
        boxes = [_box(rng) for _ in range(1 + i % 2)] if i % 2 == 0 or i % 3 == 0 else []
        if boxes:
            for x0, y0, x1, y1 in boxes:
                lines.append(f"{pid},{x0:.1f},{y0:.1f},{x1 - x0:.1f},{y1 - y0:.1f},1")
        else:
            lines.append(f"{pid},,,,,0")
        path = root / "stage_2_train_images" / f"{pid}.dcm"
        if i == n - 1:
            path.write_bytes(b"DICM" + b"\0" * 300)
        else:
            write_dicom(path, radiograph(rng, boxes), monochrome1=i % 7 == 3)
    (root / "stage_2_train_labels.csv").write_text("\n".join(lines) + "\n")
    return root


# --- SIIM-ACR Pneumothorax ----------------------------------------------------------------------------


def siim(root: Path, n: int = 40, seed: int = 0) -> Path:
    """train-rle.csv (``ImageId, EncodedPixels``; several rows per image when several runs) and DICOMs in
    nested study / series folders; one listed image has no DICOM."""
    rng = np.random.default_rng(seed)
    lines = ["ImageId, EncodedPixels"]
    w, h = SIZE
    for i in range(n):
        iid = f"1.2.276.0.7230010.3.1.4.8323329.{1000 + i}.1517875201.{850819 + i}"
        mask = np.zeros((h, w), dtype=bool)
        if i % 2 == 0:
            x0, y0, x1, y1 = (int(v) for v in _box(rng))
            mask[y0:y1, x0:x1] = True
            half = (x0 + x1) // 2  # two rows for one image: SIIM lists each run-length part on its own row
            left, right = mask.copy(), mask.copy()
            left[:, half:], right[:, :half] = False, False
            lines += [f"{iid}, {rle_encode(left)}", f"{iid}, {rle_encode(right)}"]
        else:
            lines.append(f"{iid}, -1")
        write_dicom(
            root / "dicom-images-train" / f"study{i}" / f"series{i}" / f"{iid}.dcm",
            radiograph(rng, mask=mask),
        )
    lines.append("1.2.276.0.7230010.3.1.4.8323329.9999.1517875201.1, -1")  # no DICOM for this one
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    return root


# --- COVIDx -------------------------------------------------------------------------------------------


def covidx(root: Path, n_train: int = 36, n_test: int = 12, seed: int = 0) -> Path:
    """train.txt / test.txt (``patient_id filename label source``) with PNG / JPEG images."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        lines = []
        for i in range(n):
            label = ("positive", "negative")[i % 2]
            fn = f"{split}-{i:03d}.{'png' if i % 3 else 'jpg'}"
            lines.append(f"P{split}{i // 2:03d} {fn} {label} {'ricord' if i % 2 == 0 else 'rsna'}")
            write_png(root / split / fn, radiograph(rng, [_box(rng)] if label == "positive" else []))
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n\n")
    return root


# --- Object-CXR ---------------------------------------------------------------------------------------


def object_cxr(root: Path, n_train: int = 36, n_dev: int = 12, seed: int = 0) -> Path:
    """train.csv / dev.csv (``image_name,annotation``: rectangles, ellipses, polygons) with JPEGs."""
    rng = np.random.default_rng(seed)
    for split, n, start in (("train", n_train, 1), ("dev", n_dev, 8001)):
        lines = ["image_name,annotation"]
        for i in range(n):
            name = f"{start + i:05d}.jpg"
            boxes = [_box(rng) for _ in range(i % 3)] if i % 2 == 0 else []
            objs = []
            for j, (x0, y0, x1, y1) in enumerate(boxes):
                if j == 0:
                    objs.append(f"0 {x0:.0f} {y0:.0f} {x1:.0f} {y1:.0f}")
                else:
                    objs.append(f"2 {x0:.0f} {y0:.0f} {x1:.0f} {y0:.0f} {x1:.0f} {y1:.0f} {x0:.0f} {y1:.0f}")
            lines.append(f'{name},"{";".join(objs)}"' if objs else f"{name},")
            write_png(root / split / name, radiograph(rng, boxes), "JPEG")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


#: Real source sizes (width, height) of each dataset, for :func:`time_prepare`.
REAL_SIZES = {
    "chexpert": (320, 390),  # CheXpert-v1.0-small
    "covidx": (1024, 1024),
    "rsna": (1024, 1024),
    "siim": (1024, 1024),
    "object-cxr": (2000, 2000),
    "mimic-cxr": (2544, 3056),
}


def time_prepare(root: Path, n: int = 100, image_size: int = 224) -> dict[str, float]:
    """Minutes per 1,000 studies of ``prepare`` on each replica at its dataset's real image size."""
    import json
    import logging
    import shutil
    import time

    from sista_kit.data.prepare import prepare

    global SIZE
    logging.disable(logging.WARNING)
    out = {}
    for name, size in REAL_SIZES.items():
        SIZE = size
        raw = root / name / "raw"
        opts = {}
        if name == "mimic-cxr":
            src, rep = mimic(raw, n=n)
            opts["reports"] = str(rep)
        else:
            build = {
                "chexpert": chexpert,
                "covidx": covidx,
                "rsna": rsna,
                "siim": siim,
                "object-cxr": object_cxr,
            }
            src = build[name](raw, n) if name in ("rsna", "siim") else build[name](raw, n, 4)
        t0 = time.perf_counter()
        folder = prepare(name, src, root / name / "out", image_size=image_size, progress=False, **opts)
        dt = time.perf_counter() - t0
        count = json.loads((folder / "meta.json").read_text())["n"]
        out[name] = 1000 * dt / count / 60
        print(f"{name}: {count} studies of {size[0]}x{size[1]} in {dt:.1f} s = {out[name]:.1f} min / 1,000")
        shutil.rmtree(root / name)
    SIZE = (96, 80)
    return out


if __name__ == "__main__":  # python tests/data/replicas.py [N]: the prepare times of docs/data.md
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        time_prepare(Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else 100)
