import pytest
import torch

from sista_kit.similarity import (
    FindingsSimilarity,
    TextReportSimilarity,
    build_similarity,
    similarity_from_embeddings,
)
from sista_kit.similarity.observations import SYNTHETIC_CLASSES

NORMAL_A = "FINDINGS: The lungs are clear. No pleural effusion or pneumothorax. IMPRESSION: Normal chest."
NORMAL_B = "IMPRESSION: Heart size normal. No focal consolidation. No acute cardiopulmonary disease."
EFFUSION_A = "FINDINGS: Small left pleural effusion. IMPRESSION: Small left pleural effusion."
EFFUSION_B = "FINDINGS: Small left pleural effusion. IMPRESSION: Small left pleural effusion, stable."
EFFUSION_C = "FINDINGS: Large right effusion with mediastinal structures midline. IMPRESSION: Effusion."
CARDIO = "FINDINGS: Moderate cardiomegaly. IMPRESSION: Cardiomegaly."
CORPUS = [NORMAL_A, NORMAL_B, EFFUSION_A, EFFUSION_B, EFFUSION_C, CARDIO]


def _sim(provider, texts):
    return similarity_from_embeddings(provider.embed(texts))


def test_registered_and_text_provider():
    provider = build_similarity("findings", corpus=CORPUS)
    assert isinstance(provider, FindingsSimilarity) and isinstance(provider, TextReportSimilarity)
    assert provider.source == "report_embeddings"


def test_similarity_structure():
    provider = FindingsSimilarity(CORPUS)
    z = provider.embed(CORPUS)
    assert z.dtype == torch.float32 and torch.allclose(z.norm(dim=1), torch.ones(len(CORPUS)))
    s = _sim(provider, CORPUS)
    assert s[0, 1] == pytest.approx(1.0)  # two normal reports
    assert s[0, 2] == pytest.approx(0.0) and s[1, 5] == pytest.approx(0.0)  # normal vs abnormal
    assert s[2, 3] >= 0.9  # same finding, same wording
    assert s[2, 4] < 0.9  # same finding, different wording
    assert s[2, 5] < 0.5  # different findings


def test_wording_weight_zero_compares_labels_only():
    s = _sim(FindingsSimilarity(CORPUS, wording_weight=0.0), CORPUS)
    assert s[2, 4] == pytest.approx(1.0) and s[2, 5] == pytest.approx(0.0)


def test_classes_restrict_what_counts():
    spine = "FINDINGS: Lungs are clear. Degenerative changes of the thoracic spine."
    full = _sim(FindingsSimilarity(CORPUS), [NORMAL_A, spine])
    synthetic = _sim(FindingsSimilarity(CORPUS, classes=SYNTHETIC_CLASSES), [NORMAL_A, spine])
    assert full[0, 1] == pytest.approx(0.0) and synthetic[0, 1] == pytest.approx(1.0)
    preset = FindingsSimilarity(CORPUS, classes="synthetic")
    assert torch.equal(
        preset.embed([NORMAL_A, spine]),
        FindingsSimilarity(CORPUS, classes=SYNTHETIC_CLASSES).embed([NORMAL_A, spine]),
    )
    assert FindingsSimilarity.needs_corpus and not build_similarity("labels").needs_corpus


def test_embeddings_made_once_match_batch_embeddings():
    # the data pipeline embeds every report once; a batch's rows must equal those of the table
    provider = FindingsSimilarity(CORPUS)
    table = provider.embed(CORPUS)
    assert torch.allclose(provider.embed([CORPUS[4], CORPUS[1]]), table[[4, 1]])


def test_sia_reads_the_findings_embeddings():
    from sista_kit.losses import SemanticInstanceAlignLoss

    provider = FindingsSimilarity(CORPUS)
    loss = SemanticInstanceAlignLoss(similarity=provider, threshold=0.9)
    torch.manual_seed(0)
    image, text, scale = torch.randn(len(CORPUS), 8), torch.randn(len(CORPUS), 8), torch.tensor(10.0)
    dropped = loss(image, text, scale, report_embeddings=provider.embed(CORPUS))
    plain = loss(image, text, scale, report_embeddings=torch.eye(len(CORPUS)))
    assert not torch.isclose(dropped, plain)  # the normal pair and the twin effusions are dropped


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"wording_weight": 1.5}, "wording_weight"),
        ({"uncertain_weight": 0.0}, "uncertain_weight"),
        ({"classes": {}}, "at least one class"),
        ({"classes": "mimic"}, "unknown classes preset"),
        ({"classes": {"x": ("effusion",)}}, "unknown observations"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FindingsSimilarity(CORPUS, **kwargs)


def test_bad_reports():
    provider = FindingsSimilarity(CORPUS)
    with pytest.raises(ValueError, match="empty report"):
        provider.embed(["No effusion.", "  "])
    with pytest.raises(TypeError, match="list of strings"):
        provider.embed("No effusion.")
