"""Result records and the readable report."""

from __future__ import annotations

import pytest
from suite.pipeline import Ledger, config_hash
from suite.report import markdown_tables, plot_fraction_curves
from suite.results import load_records, make_record, validate_record, write_records


def _rec(method, fraction, seed, value, metric="auroc", pretrain_seed=None):
    return make_record(
        method=method,
        task="cls",
        dataset="d",
        fraction=fraction,
        seed=seed,
        pretrain_seed=pretrain_seed,
        metric=metric,
        value=value,
    )


def test_validate_names_the_field():
    good = _rec("a", 0.1, 0, 1.0)
    with pytest.raises(ValueError, match="misses"):
        validate_record({"method": "x"})
    with pytest.raises(ValueError, match="'seed'"):
        validate_record(dict(good, seed="0"))
    with pytest.raises(ValueError, match="not finite"):
        validate_record(dict(good, value=float("nan")))
    with pytest.raises(ValueError, match="fraction"):
        validate_record(dict(good, fraction=1.5))
    with pytest.raises(ValueError, match="'pretrain_seed'"):
        validate_record(dict(good, pretrain_seed="1"))


def test_tables_mean_std_and_bold_best(tmp_path):
    records = [
        _rec("sista", 0.1, 0, 80.0),
        _rec("sista", 0.1, 1, 82.0),
        _rec("clip", 0.1, 0, 79.0),
        _rec("clip", 0.1, 1, 79.0),
    ]
    write_records(records, tmp_path)
    loaded = load_records(tmp_path)
    assert loaded == sorted([make_record(**r) for r in records], key=lambda r: (r["method"], r["seed"]))
    table = markdown_tables(records, ["sista", "clip"])
    # 95 % t-interval over 2 replicates: 12.71 x stdev / sqrt(2) = 12.71
    assert "| sista | **81.00 ± 12.71** |" in table and "| clip | 79.00 ± 0.00 |" in table
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


def test_intervals_and_paired_differences():
    from suite.report import claims, paired_tables
    from suite.stats import mean_interval, paired_difference

    e = mean_interval([1.0, 2.0, 3.0])
    assert e.mean == 2.0 and abs(e.half_width - 4.303 * 1.0 / 3**0.5) < 1e-3 and e.n == 3
    # paired by (pretraining seed, subset): a constant +2 offset is beyond noise although both spread widely
    a = {(s, s): v for s, v in enumerate([50.0, 60.0, 70.0])}
    b = {(s, s): v - 2.0 + 0.1 * s for s, v in enumerate([50.0, 60.0, 70.0])}
    d = paired_difference(a, b)
    assert d.excludes_zero and 1.7 < d.mean < 2.0
    # unpaired, the two methods' intervals overlap: only the pairing shows the difference
    assert mean_interval(list(a.values())).low < mean_interval(list(b.values())).high
    recs = [_rec("sista", 0.1, s, v, pretrain_seed=s) for (s, _), v in a.items()]
    recs += [_rec("clip", 0.1, s, v, pretrain_seed=s) for (s, _), v in b.items()]
    recs += [_rec("mgca", 0.1, s, v, pretrain_seed=s) for s, v in enumerate([40.0, 75.0, 62.0])]
    table = paired_tables(recs, ["sista", "clip", "mgca"])
    assert "| clip | **+1.90 [" in table and "| mgca | +1.00 [" in table
    found = claims(recs)
    assert len(found) == 1 and "sista is above clip" in found[0]
