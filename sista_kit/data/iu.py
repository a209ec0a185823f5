"""The IU (Open-i) track: real Indiana University chest X-ray reports with synthetic images.

The 3,955 reports ship inside the ``torchxrayvision`` package (``data/NLMCXR_reports.tgz``, licence
CC BY-NC-ND 4.0); they are read from the installed package at run time and never copied. FINDINGS /
IMPRESSION are parsed, the MeSH "major" tags (``Opacity/lung/base/left``) are mapped to our finding
classes with side / zone / severity where stated, and an image consistent with the tags is rendered
by the synthetic renderer. Samples have the structure of :class:`synthetic.Sample`; word spans are
found by keyword with a simple same-sentence negation rule, so they are approximate.
:func:`write_iu_dataset` writes the track to disk in the layout of the synthetic export.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .synthetic.export import (
    DEFAULT_SPLIT_FRACTIONS,
    FORMAT_VERSION,
    export_folder,
    is_written,
    split_assignment,
)
from .synthetic.findings import CLASS_NAMES, CLS, LOCALISED, FindingArrays, K, finding_key, sample_findings
from .synthetic.generator import DEVICE_KINDS, Sample, _boxes, _chunk_size, pack_masks, render_batch
from .synthetic.report import word_offsets

INSTALL_HINT = "pip install --no-deps torchxrayvision==1.5.7"

#: MeSH major-tag heads that map to a finding class (qualifiers after "/" give side, zone, severity).
HEAD_MAP = {
    "opacity": "consolidation",
    "airspace disease": "consolidation",
    "consolidation": "consolidation",
    "infiltrate": "consolidation",
    "pneumonia": "consolidation",
    "nodule": "nodule",
    "mass": "nodule",
    "calcified granuloma": "nodule",
    "granuloma": "nodule",
    "pleural effusion": "effusion",
    "pneumothorax": "pneumothorax",
    "cardiomegaly": "cardiomegaly",
    "pulmonary atelectasis": "atelectasis",
    "atelectasis": "atelectasis",
    "pulmonary edema": "edema",
    "pulmonary congestion": "edema",
    "edema": "edema",
}
#: Heads that map only with a qualifier: (head, required qualifier) -> class.
QUALIFIED_MAP = {
    ("costophrenic angle", "blunted"): "effusion",
    ("cardiac shadow", "enlarged"): "cardiomegaly",
}
SIDE_WORDS = {"right": 0, "left": 1, "bilateral": 2}
ZONE_WORDS = {
    "apex": 0,
    "upper lobe": 0,
    "middle lobe": 1,
    "lingula": 1,
    "hilum": 1,
    "base": 2,
    "lower lobe": 2,
    "retrocardiac": 2,
    "costophrenic angle": 2,
}
SEVERITY_WORDS = {
    "mild": 0,
    "small": 0,
    "borderline": 0,
    "minimal": 0,
    "moderate": 1,
    "severe": 2,
    "large": 2,
}
KEYWORDS = {
    "consolidation": r"opacit(y|ies)|consolidation|consolidative|infiltrates?|airspace|pneumonia",
    "nodule": r"nodules?|nodular|granulomas?|mass(es)?",
    "effusion": r"effusions?|costophrenic",
    "pneumothorax": r"pneumothora(x|ces)",
    "cardiomegaly": r"cardiomegaly|cardiac|heart",
    "atelectasis": r"atelectasis|atelectatic",
    "edema": r"edema|congestion",
}
_KW = {k: re.compile(rf"^(?:{p})$") for k, p in KEYWORDS.items()}
NEGATION_CUES = {"no", "without", "negative", "not", "free", "resolved", "resolution", "removed"}


@dataclass
class IUReport:
    """One parsed IU report."""

    uid: str
    findings: str
    impression: str
    tags: list[str]
    image_ids: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = []
        if self.findings:
            parts.append(f"FINDINGS: {self.findings}")
        if self.impression:
            parts.append(f"IMPRESSION: {self.impression}")
        return " ".join(parts)


def iu_archive_path() -> Path:
    """Path of ``NLMCXR_reports.tgz`` in the installed torchxrayvision package (not imported)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the IU reports come with torchxrayvision, which is not installed: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "NLMCXR_reports.tgz"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing from the torchxrayvision install; reinstall it: {INSTALL_HINT}"
        )
    return path


def _clean(s: str | None) -> str:
    return re.sub(r"\s+", " ", s or "").strip()


def read_iu_reports(path: str | Path | None = None) -> tuple[list[IUReport], dict[str, int]]:
    """Parse every report of the archive. Returns the reports with text and the counts of dropped ones."""
    path = Path(path) if path is not None else iu_archive_path()
    reports, dropped = [], {"no_text": 0, "unparsable": 0}
    try:
        tf = tarfile.open(path, "r:gz")
    except (OSError, tarfile.TarError) as e:
        raise OSError(f"cannot open the IU report archive {path}: {e}") from e
    with tf:
        members = sorted(
            (m for m in tf.getmembers() if m.isfile() and m.name.endswith(".xml")),
            key=lambda m: int(re.sub(r"\D", "", Path(m.name).stem) or 0),
        )
        if not members:
            raise ValueError(f"{path} holds no XML reports")
        for m in members:
            try:
                root = ET.fromstring(tf.extractfile(m).read())
            except ET.ParseError:
                dropped["unparsable"] += 1
                continue
            sec = {a.get("Label"): _clean(a.text) for a in root.iter("AbstractText")}
            uid = root.find("uId").get("id") if root.find("uId") is not None else Path(m.name).stem
            rep = IUReport(
                uid=uid,
                findings=sec.get("FINDINGS", ""),
                impression=sec.get("IMPRESSION", ""),
                tags=[_clean(t.text) for t in root.iter("major") if t.text],
                image_ids=[p.get("id") for p in root.iter("parentImage")],
            )
            if not rep.text:
                dropped["no_text"] += 1
                continue
            reports.append(rep)
    return reports, dropped


def parse_tags(tags: list[str]) -> dict[str, dict]:
    """Map MeSH major tags to ``{class: {"side", "zone", "severity"}}`` (None where not stated)."""
    out: dict[str, dict] = {}
    for tag in tags:
        parts = [p.strip().lower() for p in tag.split("/")]
        head, quals = parts[0], parts[1:]
        name = HEAD_MAP.get(head) or next(
            (c for (h, q), c in QUALIFIED_MAP.items() if h == head and q in quals), None
        )
        if name is None:
            continue
        attrs = out.setdefault(name, {"side": None, "zone": None, "severity": None})
        if head == "costophrenic angle":
            attrs["zone"] = 2
        for q in quals:
            if q in SIDE_WORDS:
                s = SIDE_WORDS[q]
                attrs["side"] = s if attrs["side"] in (None, s) else 2
            elif q in ZONE_WORDS:
                attrs["zone"] = ZONE_WORDS[q]
            elif q in SEVERITY_WORDS:
                attrs["severity"] = max(attrs["severity"] or 0, SEVERITY_WORDS[q])
    return out


def findings_from_tags(tag_lists: list[list[str]], rng: np.random.Generator) -> FindingArrays:
    """FindingArrays for the tag lists; attributes not stated by a tag are drawn from the synthetic priors."""
    f = sample_findings(rng, len(tag_lists), normal_fraction=1.0)  # all absent, attributes from priors
    for i, tags in enumerate(tag_lists):
        for name, a in parse_tags(tags).items():
            k = CLS[name]
            f.present[i, k] = True
            if a["side"] is not None and name not in ("cardiomegaly", "edema"):
                f.side[i, k] = a["side"]
            if a["zone"] is not None and name in ("consolidation", "nodule", "atelectasis"):
                f.zone[i, k] = a["zone"]
            if a["severity"] is not None:
                f.severity[i, k] = a["severity"]
                f.size[i, k] = (a["severity"] + 0.5) / 3.0
    return f


def keyword_spans(text: str, present: np.ndarray) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Word spans of finding keywords (positive mentions of labelled findings) and negated findings."""
    lower = text.lower()
    off = word_offsets(text)
    words = [lower[a:b] for a, b in off]
    spans, negated = [], set()
    neg_in_sentence = False
    for i, wd in enumerate(words):
        if wd in (".", ";"):
            neg_in_sentence = False
            continue
        if wd in NEGATION_CUES:
            neg_in_sentence = True
            continue
        for name, pat in _KW.items():
            if pat.match(wd):
                k = CLS[name]
                if neg_in_sentence:
                    if not present[k]:
                        negated.add(k)
                elif present[k]:
                    spans.append((k, i, i + 1))
    return spans, sorted(negated)


def _check_args(image_size: int, images_per_report: int, limit: int | None) -> None:
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    if images_per_report < 1:
        raise ValueError(f"images_per_report must be >= 1, got {images_per_report}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")


def _plan(
    reports: list[IUReport], seed: int, image_size: int, images_per_report: int, device_fraction: float
) -> list[tuple]:
    """Arguments of :func:`iu_chunk` for every chunk: studies are (report, image index), report-major."""
    jobs = [(r, j) for r in reports for j in range(images_per_report)]
    m = _chunk_size(image_size)
    return [(jobs[s : s + m], seed, s // m, image_size, device_fraction) for s in range(0, len(jobs), m)]


def iu_chunk(
    studies: list[tuple[IUReport, int]], seed: int, chunk: int, image_size: int, device_fraction: float = 0.15
) -> list[Sample]:
    """Render chunk number ``chunk`` of the IU track: one image per (report, image index) study."""
    rng = np.random.default_rng([seed, chunk, image_size, 0x1A])
    f = findings_from_tags([r.tags for r, _ in studies], rng)
    images, masks, g, dev_kind = render_batch(f, rng, image_size, device_fraction)
    bits = pack_masks(masks.cpu().numpy())
    boxes = _boxes(masks, f, g)
    out: list[Sample] = []
    for i, (r, j) in enumerate(studies):
        text = r.text
        spans, negated = keyword_spans(text, f.present[i])
        out.append(
            Sample(
                sample_id=f"iu_{r.uid}_{j}",
                image=images[i],
                report=text,
                labels=f.present[i].astype(np.float32),
                finding_key=finding_key(f.present[i]),
                maskbits=bits[i],
                boxes=boxes[i],
                spans=spans,
                negated=negated,
                findings=f.describe(i),
                device=DEVICE_KINDS[dev_kind[i]],
            )
        )
    return out


def generate_iu(
    seed: int = 0,
    image_size: int = 128,
    images_per_report: int = 1,
    limit: int | None = None,
    archive: str | Path | None = None,
    device_fraction: float = 0.15,
    progress: bool = False,
) -> list[Sample]:
    """Samples of the IU track: each report with ``images_per_report`` rendered images (deterministic)."""
    _check_args(image_size, images_per_report, limit)
    reports, _ = read_iu_reports(archive)
    chunks = _plan(reports[:limit], seed, image_size, images_per_report, device_fraction)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="IU studies", unit="chunk")
    return [s for job in chunks for s in iu_chunk(*job)]


def write_iu_dataset(
    root: str | os.PathLike,
    seed: int = 0,
    image_size: int = 128,
    images_per_report: int = 1,
    limit: int | None = None,
    split_fractions: dict[str, float] | None = None,
    device_fraction: float = 0.15,
    archive: str | Path | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the IU track to ``root`` in the layout of :func:`synthetic.write_dataset`; returns ``root``.

    The first ``limit`` reports (all by default) each get ``images_per_report`` rendered images. Splits
    are drawn per report with :func:`split_assignment` (the synthetic rule), so the images of a report
    share a split. Idempotent through ``meta.json`` (which records the archive's SHA-256); a folder
    holding a different dataset raises unless ``overwrite=True``. Readers of the synthetic folders
    (``read_manifest``, ``load_dataset``, ``PretrainDataset``, the downstream loaders) read it as is.
    """
    _check_args(image_size, images_per_report, limit)
    path = Path(archive) if archive is not None else iu_archive_path()
    reports, _ = read_iu_reports(path)
    reports = reports[:limit]
    meta = {
        "format_version": FORMAT_VERSION,
        "track": "iu",
        "n": len(reports) * images_per_report,
        "n_reports": len(reports),
        "images_per_report": images_per_report,
        "limit": limit,
        "seed": seed,
        "image_size": image_size,
        "split_fractions": dict(DEFAULT_SPLIT_FRACTIONS if split_fractions is None else split_fractions),
        "device_fraction": device_fraction,
        "archive_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "class_names": list(CLASS_NAMES),
        "localised": list(LOCALISED),
    }
    if is_written(root, meta, overwrite):
        return Path(root)
    assign = np.repeat(split_assignment(len(reports), seed, split_fractions), images_per_report)
    return export_folder(
        root,
        meta,
        iu_chunk,
        _plan(reports, seed, image_size, images_per_report, device_fraction),
        assign,
        description="sista_kit IU track: Indiana University reports with rendered radiographs",
        workers=workers,
        overwrite=overwrite,
        progress=progress,
    )


#: Major tags that state no finding of the patient ("No Indexing": the report was not indexed).
NON_FINDING_TAGS = frozenset({"normal", "no indexing"})


def tag_set(tags: list[str]) -> frozenset[str]:
    """The report's MeSH major tags, lower-cased: two reports with equal sets are equivalent (the
    false-negative truth of the IU track)."""
    return frozenset(t.strip().lower() for t in tags)


def similarity_labels(tag_lists: list[list[str]]) -> np.ndarray:
    """Finding labels for the ``labels`` report-similarity provider on the IU track: (N, K + 1)
    float32, the K tag-mapped classes of :func:`parse_tags` plus an "other abnormal" column set when
    a report has a tag outside them (spine, aorta, granuloma, devices, ...). Without that column
    two thirds of the reports would read as normal, only half of them rightly. The image labels
    (``Sample.labels``) keep the K classes."""
    out = np.zeros((len(tag_lists), K + 1), dtype=np.float32)
    for i, tags in enumerate(tag_lists):
        mapped = parse_tags(tags)
        for name in mapped:
            out[i, CLS[name]] = 1.0
        known = {t for t in tag_set(tags) if t in NON_FINDING_TAGS}
        unmapped = [t for t in tags if t.strip().lower() not in known and not parse_tags([t])]
        out[i, K] = float(bool(unmapped))
    return out


def iu_finding_keys(archive: str | Path | None = None) -> list[str]:
    """Finding keys of all IU reports (no rendering): for false-negative statistics."""
    reports, _ = read_iu_reports(archive)
    keys = []
    for r in reports:
        present = np.zeros(K, dtype=bool)
        for name in parse_tags(r.tags):
            present[CLS[name]] = True
        keys.append(finding_key(present))
    return keys
