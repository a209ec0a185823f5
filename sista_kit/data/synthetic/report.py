"""Radiology report writer: FINDINGS and IMPRESSION text with finding word spans.

Templates mark the words that describe a finding with ``[...]``; after assembly the character spans
are mapped to word indices of the BERT pre-tokenizer on the lower-cased report (the indexing of
``word_ids`` in the pretraining batch), so every span points at the finding it describes.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import numpy as np
from tokenizers.pre_tokenizers import BertPreTokenizer

from . import vocabulary as V
from .findings import CLASS_NAMES, CLS, SEVERITIES, SIDES, ZONES, FindingArrays

_PRE = BertPreTokenizer()
_SPAN = re.compile(r"\[([^\]]*)\]")


@dataclass
class Report:
    """A report and its ground truth: ``spans`` are (finding index, first word, end word) with the
    end exclusive; ``negated`` are the finding indices the report explicitly rules out."""

    text: str
    spans: list[tuple[int, int, int]] = field(default_factory=list)
    negated: list[int] = field(default_factory=list)


def word_offsets(text: str) -> np.ndarray:
    """Character (start, end) of each word of the lower-cased text as the BERT pre-tokenizer splits it."""
    words = _PRE.pre_tokenize_str(text.lower())
    return np.array([o for _, o in words], dtype=np.int64).reshape(-1, 2)


def char_spans_to_words(text: str, char_spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Map (finding, char start, char end) spans to (finding, first word, end word) word spans."""
    if not char_spans:
        return []
    off = word_offsets(text)
    cs = np.array(char_spans, dtype=np.int64)
    first = np.searchsorted(off[:, 0], cs[:, 1], side="left")
    end = np.searchsorted(off[:, 1], cs[:, 2], side="right")
    return [(int(k), int(a), int(b)) for k, a, b in zip(cs[:, 0], first, end, strict=True) if b > a]


class _Builder:
    """Accumulates sentences; ``[...]`` in a template marks a span of finding ``k``."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.char_spans: list[tuple[int, int, int]] = []

    def add(self, template: str, k: int = -1) -> None:
        if self.parts:
            self._push(" ")
        pos = 0
        for m in _SPAN.finditer(template):
            self._push(template[pos : m.start()])
            start = self.length
            self._push(m.group(1))
            if k >= 0:
                self.char_spans.append((k, start, self.length))
            pos = m.end()
        self._push(template[pos:])

    def _push(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)

    def text(self) -> str:
        return "".join(self.parts)


def _cap(s: str) -> str:
    i = 1 if s.startswith("[") else 0
    return s[:i] + s[i : i + 1].upper() + s[i + 1 :]


def finding_phrase(rr: random.Random, k: int, side: int, zone: int, severity: int, size: float) -> str:
    """A noun phrase for one finding with its location and size/severity words."""
    name, sd, zn, sv = CLASS_NAMES[k], SIDES[side], ZONES[zone], SEVERITIES[severity]
    pick = rr.choice
    if name == "cardiomegaly":
        return pick(V.CARDIOMEGALY[sv])
    if name == "edema":
        return " ".join(
            x for x in (pick(V.EDEMA_SEV[sv]), pick(["", "", "bilateral", "perihilar"]), pick(V.EDEMA)) if x
        )
    if name == "effusion":
        if sv == "mild" and side != 2 and rr.random() < 0.2:
            return f"blunting of the {sd} costophrenic angle"
        noun = pick(V.EFFUSION)
        if side == 2:
            noun = noun.replace("effusion", "effusions").replace("collection", "collections")
            return pick(
                [
                    f"{pick(V.EFFUSION_SIZE[sv])} bilateral {noun}",
                    f"{pick(V.EFFUSION_SIZE[sv])} {noun} bilaterally",
                ]
            )
        return pick(
            [f"{pick(V.EFFUSION_SIZE[sv])} {sd} {noun}", f"{pick(V.EFFUSION_SIZE[sv])} {noun} on the {sd}"]
        )
    if name == "pneumothorax":
        size_w = pick(V.PTX_SIZE[sv])
        return pick(
            [
                f"{size_w} {sd} apical pneumothorax",
                f"{size_w} {sd} pneumothorax",
                f"{size_w} pneumothorax on the {sd}",
                f"{size_w} {sd}-sided pneumothorax",
            ]
        )
    # Lung parenchymal findings with a zone.
    if side == 2:
        pre, post = pick(V.BILATERAL_ADJ[zn]), pick(V.BILATERAL_NOUN[zn])
    else:
        pre = f"{sd} {pick(V.ZONE_ADJ[zn])}"
        nouns = V.ZONE_NOUN[zn] + (V.MIDDLE_RIGHT if (zn == "middle" and sd == "right") else [])
        nouns = nouns + (V.MIDDLE_LEFT if (zn == "middle" and sd == "left") else [])
        post = f"the {sd} {pick(nouns)}"
    if name == "nodule":
        mm = int(round(4 + 36 * size))
        if mm >= 30:
            meas = pick([f"{mm / 10:.1f} cm", f"{mm} mm", "large", ""])
            noun = pick(V.MASS)
        else:
            meas = pick([f"{mm} mm", f"{mm}-mm", "small", ""])
            noun = pick(V.NODULE)
        meas = meas + " " if meas else ""
        return pick([f"{meas}{pre} {noun}", f"{meas}{noun} in {post}", f"{pre} {noun} measuring {mm} mm"])
    adj = pick(V.CONSOLIDATION_SEV[sv] if name == "consolidation" else V.ATELECTASIS_SEV[sv])
    noun = pick(V.CONSOLIDATION if name == "consolidation" else V.ATELECTASIS)
    adj = adj + " " if adj else ""
    return pick(
        [
            f"{adj}{pre} {noun}",
            f"{adj}{noun} in {post}",
            f"{adj}{noun} at {post}" if "base" in post else f"{adj}{pre} {noun}",
        ]
    )


def write_report(rr: random.Random, f: FindingArrays, i: int, device: int = 0) -> Report:
    """Write the report of study ``i`` of ``f`` (``device``: 0 none, 1 central line, 2 tube)."""
    present = np.flatnonzero(f.present[i]).tolist()
    absent = [k for k in range(len(CLASS_NAMES)) if k not in present]
    prior = rr.random() < 0.5
    b = _Builder()
    b.add("FINDINGS:")
    if rr.random() < 0.6:
        b.add(rr.choice(V.PRIOR_INTRO if prior else V.NO_PRIOR_INTRO))
    sentences: list[tuple[str, int]] = []
    negated: list[int] = []
    for k in present:
        phrase = (
            "["
            + finding_phrase(rr, k, f.side[i, k], f.zone[i, k], f.severity[i, k], float(f.size[i, k]))
            + "]"
        )
        r = rr.random()
        if CLASS_NAMES[k] == "cardiomegaly" and r < 0.35:
            tmpl = rr.choice(V.CARDIOMEGALY_SENT[SEVERITIES[f.severity[i, k]]])
        elif r < 0.15:
            tmpl = rr.choice(V.HEDGED)
        elif prior and r < 0.45:
            tmpl = rr.choice(V.COMPARED)
        else:
            tmpl = rr.choice(V.POSITIVE)
        sentences.append((_cap(tmpl.replace("{P}", phrase)), k))
    lung_findings = {CLS[x] for x in ("consolidation", "nodule", "atelectasis", "edema")}
    if not lung_findings & set(present) and rr.random() < 0.8:
        sentences.append((rr.choice(V.LUNGS_CLEAR), -1))
        negated.append(CLS["consolidation"])
    if CLS["cardiomegaly"] in absent and rr.random() < 0.8:
        sentences.append((rr.choice(V.HEART_NORMAL), -1))
        negated.append(CLS["cardiomegaly"])
    eff, ptx = CLS["effusion"], CLS["pneumothorax"]
    if eff in absent and ptx in absent and rr.random() < 0.5:
        sentences.append((rr.choice(V.NEG_EFF_PTX), -1))
        negated += [eff, ptx]
    else:
        for k in absent:
            if k not in negated and CLASS_NAMES[k] in V.NEGATIONS and rr.random() < 0.45:
                sentences.append((rr.choice(V.NEGATIONS[CLASS_NAMES[k]]), -1))
                negated.append(k)
    if device:
        sentences.append((rr.choice(V.DEVICES[device]), -1))
    rr.shuffle(sentences)
    for s, k in sentences:
        b.add(s, k)
    if rr.random() < 0.5:
        b.add(rr.choice(V.BONES))
    b.add("IMPRESSION:")
    if not present:
        b.add(rr.choice(V.IMPRESSION_NORMAL))
    else:
        order = present[:]
        rr.shuffle(order)
        numbered = len(order) > 1 and rr.random() < 0.4
        for n_, k in enumerate(order, 1):
            phrase = finding_phrase(rr, k, f.side[i, k], f.zone[i, k], f.severity[i, k], float(f.size[i, k]))
            tmpl = rr.choice(V.IMPRESSION_POS.get(CLASS_NAMES[k], []) + V.IMPRESSION_ANY)
            s = _cap(tmpl.replace("{P}", "[" + phrase + "]"))
            b.add(f"{n_}. {s}" if numbered else s, k)
    text = b.text()
    return Report(text, char_spans_to_words(text, b.char_spans), sorted(set(negated)))
