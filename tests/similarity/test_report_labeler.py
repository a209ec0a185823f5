import numpy as np
import pytest

from sista_kit.similarity import Code, finding_sets, label_report, label_reports, no_finding, report_labels
from sista_kit.similarity.observations import CHEXPERT, NAMES, OBSERVATIONS, SYNTHETIC_CLASSES


@pytest.mark.parametrize(
    "text, name",
    [
        ("No pneumothorax.", "pneumothorax"),
        ("Lungs are clear without effusion.", "pleural_effusion"),
        ("Negative for pneumothorax or pleural effusion.", "pleural_effusion"),
        ("The lungs are free of focal airspace disease.", "lung_opacity"),
        ("No focal consolidation, pleural effusion or pneumothorax.", "pneumothorax"),
        ("There is no evidence of edema.", "edema"),
        ("Interval resolution of left effusion.", "pleural_effusion"),
        ("The previously seen pneumothorax has resolved.", "pneumothorax"),
        ("The heart is not enlarged.", "cardiomegaly"),
        ("No suspicious pulmonary nodules or masses.", "lung_lesion"),
        ("No focal air space opacity to suggest a pneumonia.", "pneumonia"),
    ],
)
def test_negation(text, name):
    assert label_report(text)[name] is Code.NEGATED


@pytest.mark.parametrize(
    "text, name",
    [
        ("Pneumonia cannot be excluded.", "pneumonia"),
        ("Findings may represent atelectasis.", "atelectasis"),
        ("Possible small left pleural effusion.", "pleural_effusion"),
        ("Superimposed infection cannot be entirely excluded.", "pneumonia"),
        ("Right basilar opacity, suspicious for pneumonia.", "pneumonia"),
    ],
)
def test_uncertainty(text, name):
    assert label_report(text)[name] is Code.UNCERTAIN


@pytest.mark.parametrize(
    "text, name",
    [
        ("Stable mild cardiomegaly.", "cardiomegaly"),
        ("No change in the small right pleural effusion.", "pleural_effusion"),
        ("Small left pleural effusion. No pneumothorax.", "pleural_effusion"),
        ("No pneumothorax but there is a small left effusion.", "pleural_effusion"),
        ("Nodular opacity in the right upper lobe.", "lung_lesion"),
        ("Degenerative changes of the thoracic spine.", "spine_degenerative"),
        ("Tortuous and ectatic, atherosclerotic aorta.", "aorta"),
        ("Lung volumes are low.", "hypoinflation"),
        ("Calcified granulomas.", "granuloma"),
    ],
)
def test_positive(text, name):
    assert label_report(text)[name] is Code.POSITIVE


def test_section_headers_do_not_end_a_scope():
    # the colon of a header must neither end the sentence before "No" nor be read as a finding
    codes = label_report("FINDINGS: Heart size normal. IMPRESSION: No effusion. COMPARISON: None.")
    assert codes == {"pleural_effusion": Code.NEGATED}
    codes = label_report("IMPRESSION:No pneumothorax. 1. Small left effusion.")
    assert codes["pneumothorax"] is Code.NEGATED and codes["pleural_effusion"] is Code.POSITIVE


def test_nodular_opacity_is_a_lesion_only():
    codes = label_report("Left upper lobe nodular density.")
    assert codes == {"lung_lesion": Code.POSITIVE}


def test_normal_and_abnormal_reports():
    normal = "FINDINGS: The lungs are clear. No pleural effusion or pneumothorax. IMPRESSION: Normal chest."
    abnormal = "FINDINGS: Mild degenerative changes of the spine. IMPRESSION: No acute disease."
    codes = label_reports([normal, abnormal])
    assert codes.shape == (2, len(NAMES)) and codes.dtype == np.int8
    assert no_finding(codes).tolist() == [True, False]
    # restricted to the chest findings, degenerative spine does not count
    assert no_finding(codes, CHEXPERT).tolist() == [True, True]


def test_report_labels_and_finding_sets():
    texts = ["Possible right lower lobe pneumonia. No effusion.", "Moderate cardiomegaly. Small effusions."]
    assert finding_sets(label_reports(texts)) == ["consolidation", "cardiomegaly,effusion"]
    labels = report_labels(texts, SYNTHETIC_CLASSES)
    assert labels.shape == (2, 7) and labels.dtype == np.float32 and labels.sum() == 3
    assert report_labels(texts).shape == (2, len(OBSERVATIONS))


def test_bad_inputs():
    with pytest.raises(TypeError, match="sequence of strings"):
        label_reports("No effusion.")
    with pytest.raises(TypeError, match="report must be a string"):
        label_reports([None])
    with pytest.raises(ValueError, match="unknown observations"):
        no_finding(label_reports(["x"]), ["effusion"])


def test_observation_list_is_documented():
    assert len(set(NAMES)) == len(NAMES)
    assert set(CHEXPERT) <= set(NAMES)
    assert all(o.description and o.patterns for o in OBSERVATIONS)
    assert {o for obs in SYNTHETIC_CLASSES.values() for o in obs} <= set(NAMES)


def test_exact_finding_sets_on_synthetic_reports():
    from sista_kit.data.synthetic import generate

    samples = generate(400, seed=5, image_size=32)
    pred = finding_sets(label_reports([s.report for s in samples]))
    accuracy = np.mean([p == s.finding_key for p, s in zip(pred, samples, strict=True)])
    assert accuracy >= 0.95
