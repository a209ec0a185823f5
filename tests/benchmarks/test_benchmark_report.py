"""Result records and the readable report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from suite.pipeline import Ledger, config_hash  # noqa: E402
from suite.report import markdown_tables, plot_fraction_curves  # noqa: E402
from suite.results import load_records, validate_record, write_records  # noqa: E402


def _rec(method, fraction, seed, value, metric="auroc"):
    return dict(
        method=method, task="cls", dataset="d", fraction=fraction, seed=seed, metric=metric, value=value
    )


def test_validate_names_the_field():
    with pytest.raises(ValueError, match="misses"):
        validate_record({"method": "x"})
    with pytest.raises(ValueError, match="'seed'"):
        validate_record(_rec("a", 0.1, "0", 1.0))
    with pytest.raises(ValueError, match="not finite"):
        validate_record(_rec("a", 0.1, 0, float("nan")))
    with pytest.raises(ValueError, match="fraction"):
        validate_record(_rec("a", 1.5, 0, 1.0))


def test_tables_mean_std_and_bold_best(tmp_path):
    records = [
        _rec("sista", 0.1, 0, 80.0),
        _rec("sista", 0.1, 1, 82.0),
        _rec("clip", 0.1, 0, 79.0),
        _rec("clip", 0.1, 1, 79.0),
    ]
    write_records(records, tmp_path)
    assert load_records(tmp_path) == sorted(records, key=lambda r: (r["method"], r["seed"]))
    table = markdown_tables(records, ["sista", "clip"])
    assert "| sista | **81.00 ± 1.41** |" in table and "| clip | 79.00 ± 0.00 |" in table
    ties = markdown_tables([_rec("a", 0.1, 0, 0.0), _rec("b", 0.1, 0, 0.0)], ["a", "b"])
    assert "**" not in ties  # nothing is bold when every method ties
    diag = [
        dict(_rec("a", None, 0, 0.25, "r1"), task="retrieval"),
        dict(_rec("b", None, 0, 0.5, "r1"), task="retrieval"),
        dict(_rec("b", None, 0, 0.1, "r5"), task="retrieval"),
    ]
    assert "| b | **0.500** | 0.100 |" in markdown_tables(diag, ["a", "b"])
    assert plot_fraction_curves(records, ["sista", "clip"], tmp_path / "c.png").stat().st_size > 5000


def test_ledger_and_hash(tmp_path):
    ledger = Ledger()
    assert ledger.cached(tmp_path / "r.json", "u") is None
    ledger.record(tmp_path / "r.json", "u", {"a": 1})
    assert (
        ledger.cached(tmp_path / "r.json", "u") == {"a": 1} and ledger.ran == ["u"] and ledger.reused == ["u"]
    )
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1}) != config_hash({"a": 2, "b": 2})
