"""Finding vocabulary and vectorised sampling of finding sets with their attributes.

A batch of finding sets is a :class:`FindingArrays`: per sample and class, whether the finding is
present and its side, zone, size and severity, all as numpy arrays of shape (N, K).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "consolidation",
    "nodule",
    "effusion",
    "pneumothorax",
    "cardiomegaly",
    "atelectasis",
    "edema",
)
K = len(CLASS_NAMES)
CLS = {name: i for i, name in enumerate(CLASS_NAMES)}

#: Findings with a compact region: they get segmentation labels and detection boxes.
#: Edema is diffuse: it has a (perihilar) mask for grounding but no box/label-map class.
LOCALISED: tuple[str, ...] = CLASS_NAMES[:6]

#: Overlap priority in the segmentation label map, lowest first (later ones are painted on top).
LABEL_MAP_PRIORITY: tuple[str, ...] = (
    "cardiomegaly",
    "effusion",
    "atelectasis",
    "consolidation",
    "pneumothorax",
    "nodule",
)

SIDES = ("right", "left", "bilateral")  # the patient's side: patient's right is on the image left
ZONES = ("upper", "middle", "lower")
SEVERITIES = ("mild", "moderate", "severe")

# Relative frequency of each class among abnormal studies.
_CLASS_WEIGHTS = np.array([0.22, 0.14, 0.20, 0.08, 0.16, 0.13, 0.07])
# Side probabilities (right, left, bilateral) and zone probabilities (upper, middle, lower) per class.
_SIDE_P = np.array(
    [
        [0.45, 0.40, 0.15],  # consolidation
        [0.50, 0.50, 0.00],  # nodule
        [0.35, 0.30, 0.35],  # effusion
        [0.50, 0.50, 0.00],  # pneumothorax
        [1.00, 0.00, 0.00],  # cardiomegaly (side unused)
        [0.40, 0.40, 0.20],  # atelectasis
        [0.00, 0.00, 1.00],  # edema
    ]
)
_ZONE_P = np.array(
    [
        [0.25, 0.30, 0.45],
        [0.40, 0.35, 0.25],
        [0.00, 0.00, 1.00],
        [1.00, 0.00, 0.00],
        [0.00, 0.00, 1.00],
        [0.05, 0.25, 0.70],
        [0.00, 1.00, 0.00],
    ]
)


@dataclass
class FindingArrays:
    """Finding sets of N studies; every array is (N, K) with K = len(CLASS_NAMES)."""

    present: np.ndarray  # bool
    side: np.ndarray  # int8 index into SIDES
    zone: np.ndarray  # int8 index into ZONES
    severity: np.ndarray  # int8 index into SEVERITIES
    size: np.ndarray  # float32 in [0, 1], relative extent (drives the rendered size)

    def __len__(self) -> int:
        return int(self.present.shape[0])

    def __getitem__(self, idx) -> FindingArrays:
        return FindingArrays(
            *(a[idx] for a in (self.present, self.side, self.zone, self.severity, self.size))
        )

    @staticmethod
    def concat(parts: list[FindingArrays]) -> FindingArrays:
        fields = ("present", "side", "zone", "severity", "size")
        return FindingArrays(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))

    def describe(self, i: int) -> list[dict]:
        """The findings of study ``i`` as a list of attribute dicts (class order)."""
        out = []
        for k in np.flatnonzero(self.present[i]):
            out.append(
                {
                    "finding": CLASS_NAMES[k],
                    "side": SIDES[self.side[i, k]],
                    "zone": ZONES[self.zone[i, k]],
                    "severity": SEVERITIES[self.severity[i, k]],
                    "size": round(float(self.size[i, k]), 3),
                }
            )
        return out


def finding_key(present_row: np.ndarray) -> str:
    """Canonical finding set of one study: ``"normal"`` or the sorted finding names joined by ``,``."""
    names = sorted(CLASS_NAMES[k] for k in np.flatnonzero(present_row))
    return ",".join(names) if names else "normal"


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category per row of ``probs`` (..., C) by inverse CDF."""
    cdf = np.cumsum(probs, axis=-1)
    cdf /= cdf[..., -1:]
    u = rng.random(probs.shape[:-1] + (1,))
    return (u > cdf).sum(-1).clip(0, probs.shape[-1] - 1).astype(np.int8)


def sample_findings(rng: np.random.Generator, n: int, normal_fraction: float = 1 / 3) -> FindingArrays:
    """Sample ``n`` finding sets: about ``normal_fraction`` normal, else 1-3 correlated findings."""
    if not 0.0 <= normal_fraction <= 1.0:
        raise ValueError(f"normal_fraction must lie in [0, 1], got {normal_fraction}")
    abnormal = rng.random(n) >= normal_fraction
    count = np.where(abnormal, 1 + _categorical(rng, np.tile([0.55, 0.30, 0.15], (n, 1))), 0)
    # Weighted sampling without replacement via Gumbel top-k, all rows at once.
    gumbel = -np.log(-np.log(rng.random((n, K)).clip(1e-12, 1 - 1e-12)))
    scores = np.log(_CLASS_WEIGHTS)[None] + gumbel
    rank = np.argsort(np.argsort(-scores, axis=1), axis=1)
    present = rank < count[:, None]
    # Clinical co-occurrence: edema often comes with cardiomegaly and effusion.
    edema = present[:, CLS["edema"]]
    present[:, CLS["cardiomegaly"]] |= edema & (rng.random(n) < 0.5)
    present[:, CLS["effusion"]] |= edema & (rng.random(n) < 0.3)
    side = _categorical(rng, np.broadcast_to(_SIDE_P, (n, K, 3)))
    zone = _categorical(rng, np.broadcast_to(_ZONE_P, (n, K, 3)))
    severity = _categorical(rng, np.broadcast_to([0.5, 0.35, 0.15], (n, K, 3)))
    size = ((severity + rng.random((n, K))) / 3.0).astype(np.float32)
    return FindingArrays(present, side, zone, severity, size)
