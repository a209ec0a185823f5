"""A rule-based chest X-ray report labeler: per observation positive / uncertain / negated / absent.

CheXpert-style: mentions are found by phrase (:mod:`.observations`), then classified NegEx-style.
A report is split into sentences and clauses (section headers such as ``IMPRESSION:`` are removed
first, so their colon does not end a scope); a negation cue ("no", "without", "negative for",
"free of", "resolved", ... ) negates the mentions after it in its clause, an uncertainty cue ("may",
"possible", "suspicious for", ...) makes them uncertain, and post cues ("... cannot be excluded",
"... has resolved") act on the mentions before them. The nearest cue wins. Pseudo cues ("no
change in", "no ... to suggest") do not negate, nor does the "not" of "not excluded" (uncertain).
A report is "No Finding" when no observation is positive or uncertain. Pure Python; no model,
nothing downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import IntEnum

import numpy as np

from .observations import IGNORED, NAMES, OBSERVATIONS, SYNTHETIC_CLASSES


class Code(IntEnum):
    """Label of one observation in one report."""

    ABSENT = 0  #: not mentioned
    POSITIVE = 1
    UNCERTAIN = 2
    NEGATED = 3


_HEADER = re.compile(
    r"\b(?:findings|impression|comparison|indication|history|technique|examination|exam|"
    r"clinical history|reason for exam|conclusion|recommendation|summary|result)s?\s*:",
)
_NUMBERING = re.compile(r"(?:^|\s)\d{1,2}[.)]\s+(?=[a-z])")
_SENTENCE = re.compile(r"(?<!\d)\.(?!\d)|;|\n|\?|!|:")
_TERMINATORS = re.compile(
    r"\b(?:but|however|although|though|except|aside from|apart from|otherwise|which|whereas|"
    r"there (?:is|are|has been|have been)|stable|unchanged|persistent|again|with the exception)\b"
)
_PSEUDO = re.compile(
    r"\b(?:no|without|not) (?:\w+ )?(?:change|changed|increased?|decreased?|interval change)\b"
    r"|\bnot (?:significantly |substantially )?changed\b|\bno new\b(?= change)"
    r"|\bnot only\b|\bto (?:suggest|indicate)\b|\bgram.negative\b"
)
_UNCERTAIN_POST = re.compile(
    r"\b(?:can ?not|can't|could not|may not) (?:be )?(?:entirely |completely |totally )?"
    r"(?:excluded|ruled out|exclude|rule out)"
    r"|\b(?:is |are )?not (?:entirely |completely )?(?:excluded|ruled out)"
    r"|\b(?:is|are) (?:possible|suspected|questioned|not certain|uncertain)"
    r"|\bdifficult to exclude\b|\bnot (?:well |clearly )?(?:evaluated|assessed)\b"
)
_UNCERTAIN_PRE = re.compile(
    r"\b(?:possible|possibly|probable|probably|questionable|question of|suspected|suspicious|"
    r"suspicion|concerning|concern for|may|might|could|can represent|suggest|suggests|suggesting|"
    r"suggestive|likely|versus|vs|differential|worrisome|cannot exclude|can not exclude|"
    r"not exclude|equivocal|indeterminate|presumed|presumably|favor|atypical|apparent|"
    r"borderline|perhaps|nonspecific|uncertain|developing|early)\b"
)
_NEGATION_PRE = re.compile(
    r"\b(?:no|not|without|negative for|free of|absence of|absent|resolution of|resolved|"
    r"resolving|removal of|removed|clear of|cleared|nor|neither|rather than|ruled out)\b"
)
_NEGATION_POST = re.compile(
    r"\b(?:(?:is|are|was|were) (?:no longer|not) (?:\w+ )?"
    r"(?:seen|identified|present|visualized|demonstrated|appreciated|evident|noted|visible)"
    r"|no longer (?:seen|present|visualized|visible)"
    r"|(?:is|are) absent|(?:has|have) (?:\w+ )?(?:resolved|cleared)|resolved|removed|is negative"
    r"|(?:appears? |is |are )?within (?:\w+ )?limits(?: of normal)?|(?:is |are )?normal)\b"
)


def normalise(text: str) -> str:
    """Lower-case, drop section headers (``IMPRESSION:``) and list numbers, squeeze white space."""
    text = _HEADER.sub(". ", text.lower())
    text = _NUMBERING.sub(". ", text)
    return re.sub(r"\s+", " ", text).strip()


def clauses(text: str) -> list[str]:
    """Sentences of a normalised report (a clause-level scope is applied inside each)."""
    return [s.strip(" ,") for s in _SENTENCE.split(text) if s.strip(" ,")]


def _spans(pattern: re.Pattern[str], s: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(s)]


def _overlaps(a: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(a[0] < b[1] and b[0] < a[1] for b in spans)


#: Post cues act on a mention at most this many characters before them.
POST_WINDOW = 30


def _classify(start: int, end: int, cues: list[tuple[int, int, str, Code]], stops: list[int]) -> Code:
    """Code of the mention [start, end) from the nearest cue in scope (no terminator between).
    An uncertainty cue inside a negation's scope is negated with it ("no suspicious nodules")."""
    best, best_dist, negated_from = Code.POSITIVE, None, None
    for c0, c1, kind, code in cues:
        if kind == "pre":
            if c0 >= end or any(c1 <= t < start for t in stops):
                continue
            dist = max(0, start - c1)
            if code is Code.NEGATED:
                negated_from = c0 if negated_from is None else min(negated_from, c0)
        else:
            if c0 < end or c0 - end > POST_WINDOW or any(end <= t < c0 for t in stops):
                continue
            dist = c0 - end
        if best_dist is None or dist < best_dist:
            best, best_dist, best_kind, best_start = code, dist, kind, c0
    if (
        best is Code.UNCERTAIN
        and best_kind == "pre"
        and negated_from is not None
        and negated_from < best_start
    ):
        return Code.NEGATED
    return best


def label_sentence(s: str) -> dict[str, Code]:
    """Codes of the observations mentioned in one normalised sentence."""
    pseudo = _spans(_PSEUDO, s)
    unc_post = _spans(_UNCERTAIN_POST, s)
    blocked = pseudo + unc_post
    cues = [(a, b, "post", Code.UNCERTAIN) for a, b in unc_post]
    cues += [
        (a, b, "pre", Code.UNCERTAIN) for a, b in _spans(_UNCERTAIN_PRE, s) if not _overlaps((a, b), blocked)
    ]
    cues += [
        (a, b, "pre", Code.NEGATED) for a, b in _spans(_NEGATION_PRE, s) if not _overlaps((a, b), blocked)
    ]
    cues += [
        (a, b, "post", Code.NEGATED) for a, b in _spans(_NEGATION_POST, s) if not _overlaps((a, b), blocked)
    ]
    stops = [m.start() for m in _TERMINATORS.finditer(s)]
    claimed = _spans(IGNORED, s)
    out: dict[str, Code] = {}
    for obs in OBSERVATIONS:
        for m in obs.regex.finditer(s):
            if _overlaps(m.span(), claimed):
                continue
            claimed.append(m.span())
            code = _classify(m.start(), m.end(), cues, stops)
            out[obs.name] = _merge(out.get(obs.name, Code.ABSENT), code)
    return out


def _merge(a: Code, b: Code) -> Code:
    """Combine two mentions of one observation: positive > uncertain > negated > absent."""
    rank = {Code.ABSENT: 0, Code.NEGATED: 1, Code.UNCERTAIN: 2, Code.POSITIVE: 3}
    return a if rank[a] >= rank[b] else b


def label_report(text: str) -> dict[str, Code]:
    """Codes of the observations a report mentions (absent ones are left out)."""
    if not isinstance(text, str):
        raise TypeError(f"report must be a string, got {type(text).__name__}")
    out: dict[str, Code] = {}
    for s in clauses(normalise(text)):
        for name, code in label_sentence(s).items():
            out[name] = _merge(out.get(name, Code.ABSENT), code)
    return out


def label_reports(texts: Sequence[str]) -> np.ndarray:
    """Per-observation codes (N, O) int8 (values of :class:`Code`; columns in ``observations.NAMES``)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    col = {n: j for j, n in enumerate(NAMES)}
    codes = np.zeros((len(texts), len(NAMES)), dtype=np.int8)
    for i, text in enumerate(texts):
        for name, code in label_report(text).items():
            codes[i, col[name]] = code
    return codes


def present(codes: np.ndarray, uncertain: bool = True) -> np.ndarray:
    """Multi-hot (N, O) bool: observations positive (or uncertain, when ``uncertain``)."""
    found = codes == Code.POSITIVE
    return found | (codes == Code.UNCERTAIN) if uncertain else found


def no_finding(codes: np.ndarray, observations: Sequence[str] | None = None) -> np.ndarray:
    """(N,) bool: no observation (of ``observations``, default all) is positive or uncertain."""
    return ~present(codes[:, _columns(observations)]).any(axis=1)


def _columns(observations: Sequence[str] | None) -> list[int]:
    if observations is None:
        return list(range(len(NAMES)))
    unknown = [o for o in observations if o not in NAMES]
    if unknown:
        raise ValueError(f"unknown observations {unknown}; expected names from {', '.join(NAMES)}")
    return [NAMES.index(o) for o in observations]


def class_labels(codes: np.ndarray, classes: dict[str, Sequence[str]] | None = None) -> np.ndarray:
    """Multi-hot (N, K) float32 over ``classes`` (class -> our observations; default the synthetic
    dataset's 7 classes): a class is present when any of its observations is positive or uncertain.
    This is what ``report_labels`` needs for the ``labels`` provider on text-only data."""
    classes = SYNTHETIC_CLASSES if classes is None else classes
    found = present(codes)
    return np.stack([found[:, _columns(obs)].any(axis=1) for obs in classes.values()], axis=1).astype(
        np.float32
    )


def finding_sets(codes: np.ndarray, classes: dict[str, Sequence[str]] | None = None) -> list[str]:
    """Finding key per report over ``classes`` (``"normal"`` or sorted class names joined by ``,``),
    as ``synthetic.finding_key`` writes it."""
    names = list((SYNTHETIC_CLASSES if classes is None else classes).keys())
    rows = class_labels(codes, classes) > 0
    return [",".join(sorted(n for n, v in zip(names, r, strict=True) if v)) or "normal" for r in rows]


def report_labels(texts: Sequence[str], classes: dict[str, Sequence[str]] | None = None) -> np.ndarray:
    """``report_labels`` for the ``labels`` provider from report text: (N, C) float32 multi-hot of
    the classes found (positive or uncertain). ``classes`` maps class -> observation names; None
    gives one class per observation (``observations.NAMES``)."""
    classes = {n: (n,) for n in NAMES} if classes is None else classes
    return class_labels(label_reports(texts), classes)
