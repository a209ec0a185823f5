"""Seeded, batched generation of synthetic chest radiographs with reports and ground truth."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from .anatomy import Geometry, expose, render_anatomy, render_devices, sample_geometry
from .findings import CLS, LOCALISED, FindingArrays, K, finding_key, sample_findings
from .lesions import enlarge_heart, render_findings
from .report import Report, write_report

DEVICE_KINDS = ("none", "central_line", "endotracheal_tube")


@dataclass
class Sample:
    """One study: image, report and ground truth (the structure shared by the synthetic and IU tracks).

    ``boxes`` lists (finding index, x0, y0, x1, y1) in pixels, x1/y1 exclusive, one per localised
    finding and side; ``spans`` lists (finding index, first word, end word) over the words of the
    BERT pre-tokenizer on the lower-cased report; ``negated`` the findings the report rules out.
    """

    sample_id: str
    image: np.ndarray  # uint8 (H, W)
    report: str
    labels: np.ndarray  # float32 (K,)
    finding_key: str
    maskbits: np.ndarray  # uint8 (H, W): bit k set where finding k is
    boxes: list[tuple[int, int, int, int, int]]
    spans: list[tuple[int, int, int]]
    negated: list[int] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    device: str = "none"

    @property
    def masks(self) -> np.ndarray:
        """Per-finding masks, bool (K, H, W)."""
        return unpack_masks(self.maskbits)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """Bool (..., K, H, W) with K <= 8 -> uint8 (..., H, W) with bit k set where mask k is."""
    if masks.shape[-3] > 8:
        raise ValueError(f"at most 8 finding masks fit in one byte, got {masks.shape[-3]}")
    weights = (1 << np.arange(masks.shape[-3], dtype=np.uint8)).reshape(-1, 1, 1)
    return (masks.astype(np.uint8) * weights).sum(-3, dtype=np.uint8)


def unpack_masks(bits: np.ndarray, k: int = K) -> np.ndarray:
    """Inverse of :func:`pack_masks`: uint8 (..., H, W) -> bool (..., K, H, W)."""
    shifts = np.arange(k, dtype=np.uint8).reshape(-1, 1, 1)
    return ((bits[..., None, :, :] >> shifts) & 1).astype(bool)


def mask_boxes(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight boxes (..., 4) as x0, y0, x1, y1 (exclusive) of bool masks (..., H, W); and non-emptiness."""
    h, w = masks.shape[-2:]
    rows, cols = masks.any(-1), masks.any(-2)
    nonempty = rows.any(-1)
    y0 = rows.to(torch.uint8).argmax(-1)
    y1 = h - rows.flip(-1).to(torch.uint8).argmax(-1)
    x0 = cols.to(torch.uint8).argmax(-1)
    x1 = w - cols.flip(-1).to(torch.uint8).argmax(-1)
    boxes = torch.stack([x0, y0, x1, y1], -1) * nonempty[..., None]
    return boxes, nonempty


@dataclass
class SyntheticBatch:
    """A batch of generated studies held as arrays (a chunk of a dataset)."""

    ids: list[str]
    images: np.ndarray  # uint8 (N, H, W)
    maskbits: np.ndarray  # uint8 (N, H, W)
    findings: FindingArrays
    reports: list[Report]
    boxes: list[list[tuple[int, int, int, int, int]]]
    devices: np.ndarray  # int (N,) index into DEVICE_KINDS

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> np.ndarray:
        return self.findings.present.astype(np.float32)

    def sample(self, i: int) -> Sample:
        return Sample(
            sample_id=self.ids[i],
            image=self.images[i],
            report=self.reports[i].text,
            labels=self.labels[i],
            finding_key=finding_key(self.findings.present[i]),
            maskbits=self.maskbits[i],
            boxes=self.boxes[i],
            spans=self.reports[i].spans,
            negated=self.reports[i].negated,
            findings=self.findings.describe(i),
            device=DEVICE_KINDS[int(self.devices[i])],
        )

    def samples(self) -> list[Sample]:
        return [self.sample(i) for i in range(len(self))]


def _boxes(masks: torch.Tensor, f: FindingArrays, g: Geometry) -> list[list[tuple[int, int, int, int, int]]]:
    """One box per localised finding, two (one per lung) for bilateral ones; only present pairs are read."""
    n, _, h, w = masks.shape
    loc = np.zeros(K, dtype=bool)
    loc[[CLS[name] for name in LOCALISED]] = True
    ri, ki = np.nonzero(f.present & loc[None])
    out: list[list[tuple[int, int, int, int, int]]] = [[] for _ in range(n)]
    if len(ri) == 0:
        return out
    sel = masks[torch.as_tensor(ri), torch.as_tensor(ki)]  # (M, H, W)
    mid = ((g.cx.view(n)[torch.as_tensor(ri)] * 0.5 + 0.5) * w).round().long().clamp(1, w - 1)
    left = (torch.arange(w, device=masks.device).view(1, w) < mid.view(-1, 1)).view(-1, 1, w)
    full, ok = (t.cpu().numpy() for t in mask_boxes(sel))
    halves, ok_h = (t.cpu().numpy() for t in mask_boxes(torch.stack([sel & left, sel & ~left], 1)))
    split = (f.side[ri, ki] == 2) & (ki != CLS["cardiomegaly"])
    for j, (i, k) in enumerate(zip(ri.tolist(), ki.tolist(), strict=True)):  # a few findings per study
        if split[j]:
            out[i] += [(k, *map(int, halves[j, s])) for s in range(2) if ok_h[j, s]]
        elif ok[j]:
            out[i].append((k, *map(int, full[j])))
    return out


def render_batch(
    f: FindingArrays,
    rng: np.random.Generator,
    image_size: int = 128,
    device_fraction: float = 0.15,
    torch_device: str | torch.device = "cpu",
) -> tuple[np.ndarray, torch.Tensor, Geometry, np.ndarray]:
    """Render images for given finding sets (also used by the IU track).

    Findings whose mask comes out empty are removed from ``f`` (in place), so that labels and masks
    always agree. Returns (images uint8 (N, H, W), masks bool (N, K, H, W), geometry, device kinds).
    """
    n, h, w = len(f), image_size, image_size
    gen = torch.Generator(device=torch_device).manual_seed(int(rng.integers(2**62)))
    g = sample_geometry(rng, n, torch_device)
    enlarge_heart(g, f, rng)
    anat = render_anatomy(g, h, w, rng)
    masks, lucent = render_findings(g, anat, f, rng)
    dev_kind = np.where(rng.random(n) < device_fraction, 1 + (rng.random(n) < 0.4), 0)
    rows = np.flatnonzero(dev_kind)
    if len(rows):
        ri = torch.as_tensor(rows, device=anat["atten"].device)
        kind = torch.as_tensor(dev_kind[rows], device=ri.device)
        anat["atten"].index_add_(0, ri, render_devices(g.rows(ri), anat["u"][ri], anat["v"][ri], kind))
    anat["atten"] += 0.045 * anat["texture"] * anat["lungs"] * (1 - lucent)
    images = expose(anat["atten"], g, gen).cpu().numpy()
    ri, ki = np.nonzero(f.present)
    empty = ~masks[torch.as_tensor(ri), torch.as_tensor(ki)].flatten(1).any(1).cpu().numpy()
    f.present[ri[empty], ki[empty]] = False
    return images, masks, g, dev_kind


def _chunk_size(image_size: int) -> int:
    return int(max(8, min(256, 2**19 // (image_size * image_size))))


def generate_chunk(
    seed: int,
    chunk: int,
    image_size: int = 128,
    normal_fraction: float = 1 / 3,
    device_fraction: float = 0.15,
    torch_device: str | torch.device = "cpu",
) -> SyntheticBatch:
    """Generate chunk number ``chunk`` of the dataset with ``seed`` (a pure function of its arguments)."""
    m = _chunk_size(image_size)
    rng = np.random.default_rng([seed, chunk, image_size])
    rr = random.Random(int(rng.integers(2**62)))
    f = sample_findings(rng, m, normal_fraction)
    images, masks, g, dev_kind = render_batch(f, rng, image_size, device_fraction, torch_device)
    reports = [write_report(rr, f, i, int(dev_kind[i])) for i in range(m)]
    ids = [f"syn{seed}_{chunk * m + i:06d}" for i in range(m)]
    maskbits = pack_masks(masks.cpu().numpy())
    return SyntheticBatch(ids, images, maskbits, f, reports, _boxes(masks, f, g), dev_kind)


def iter_chunks(
    n: int, seed: int = 0, image_size: int = 128, progress: bool = False, **kwargs
) -> Iterator[SyntheticBatch]:
    """Yield the dataset of ``n`` studies chunk by chunk; study i depends only on (seed, i, image_size)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    m = _chunk_size(image_size)
    n_chunks = -(-n // m)
    it = range(n_chunks)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="synthetic studies", unit="chunk")
    for c in it:
        batch = generate_chunk(seed, c, image_size, **kwargs)
        keep = min(m, n - c * m)
        yield batch if keep == m else _head(batch, keep)


def _head(b: SyntheticBatch, k: int) -> SyntheticBatch:
    return SyntheticBatch(
        b.ids[:k], b.images[:k], b.maskbits[:k], b.findings[:k], b.reports[:k], b.boxes[:k], b.devices[:k]
    )


def generate(n: int, seed: int = 0, image_size: int = 128, progress: bool = False, **kwargs) -> list[Sample]:
    """Generate ``n`` studies in memory as :class:`Sample` objects (deterministic for a seed)."""
    return [s for b in iter_chunks(n, seed, image_size, progress, **kwargs) for s in b.samples()]
