"""The issue's held-out targets on the real IU reports (shipped with torchxrayvision)."""

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchxrayvision") is None, reason="the IU reports come with torchxrayvision"
)


def test_held_out_iu_detection():
    from sista_kit.data import iu
    from sista_kit.similarity import FindingsSimilarity, calibrate, detection

    reports, _ = iu.read_iu_reports()
    train, test = reports[0::2], reports[1::2]
    provider = FindingsSimilarity([r.text for r in train])
    held = detection(
        provider, [r.text for r in test], [iu.tag_set(r.tags) for r in test], 0.9, batch_size=128
    )
    assert held.ap >= 0.75 and held.precision >= 0.8 and held.recall >= 0.5
    cal = calibrate(
        provider, [r.text for r in train], [iu.tag_set(r.tags) for r in train], 0.95, batch_size=128
    )
    assert 0.9 <= cal.threshold <= 1.0
