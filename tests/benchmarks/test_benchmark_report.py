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


def _seg_rec(method, seed, metric, value):
    return dict(_rec(method, 0.1, seed, value, metric, pretrain_seed=seed), task="seg")


def test_seg_auprc_table_follows_dice():
    from suite.pipeline import HEADLINE
    from suite.report import reported

    records = [
        _seg_rec(m, s, k, v + s)
        for m in ("sista", "clip")
        for s in (0, 1)
        for k, v in (("mDice_fg", 60.0), ("mAUPRC_fg", 70.0 if m == "sista" else 50.0), ("mIoU", 40.0))
    ]
    shown = reported(records, HEADLINE)
    assert {r["metric"] for r in shown} == {"mDice_fg", "mAUPRC_fg"}
    table = markdown_tables(shown, ["sista", "clip"])
    assert table.index("### seg / d / mDice_fg") < table.index("### seg / d / mAUPRC_fg")
    auprc = table[table.index("### seg / d / mAUPRC_fg") :]
    assert "| sista | **70.50 ± 6.35** |" in auprc and "Pixel-level average precision" in auprc


def _unit(out, method, task, fraction, seed, losses):
    """A transfer unit folder as the pipeline lays it out, with its head's loss curve."""
    import json

    unit = out / "transfer" / method / task / f"h{seed}" / f"f{fraction:g}-s{seed}"
    (unit / "work").mkdir(parents=True)
    payload = {"method": method, "task": task, "fraction": fraction, "seed": seed, "pretrain_seed": seed}
    (unit / "result.json").write_text(json.dumps(payload))
    if losses is not None:
        rows = "".join(f"{i},{v},{v / 2}\n" for i, v in enumerate(losses, 1))
        (unit / "work" / "head_loss.csv").write_text("iter,loss,loss_cls\n" + rows)
    return unit


def test_head_curves_from_unit_folders(tmp_path):
    from itertools import product

    from matplotlib.image import imread
    from suite.report import head_loss_units, plot_head_curves

    for method, seed, task, fraction in product(("sista", "clip"), (0, 1), ("seg", "det"), (0.1, 1.0)):
        _unit(tmp_path, method, task, fraction, seed, [2.0 - 0.1 * i + 0.05 * seed for i in range(12)])
    _unit(tmp_path, "sista", "cls", 0.1, 0, [1.0])  # no head curves for cls
    _unit(tmp_path, "clip", "seg", 0.01, 2, None)  # a unit without its curve is left out
    units = head_loss_units(tmp_path)
    assert len(units) == 16 and {u["task"] for u in units} == {"seg", "det"}
    png = plot_head_curves(tmp_path, tmp_path / "head_curves.png", ["sista", "clip"])
    assert png == tmp_path / "head_curves.png" and png.stat().st_size > 5000
    height, width = imread(png).shape[:2]
    assert (height, width) == (round(2 * 3.4 * 110), round(2 * 4.6 * 110))  # tasks x fractions panels
    # records naming their CSV (as metrics.json does) draw the same panels
    only_seg = [u for u in units if u["task"] == "seg" and u["fraction"] == 0.1]
    one = plot_head_curves(only_seg, tmp_path / "one.png")
    assert imread(one).shape[:2] == (round(3.4 * 110), round(4.6 * 110))
    assert plot_head_curves(tmp_path / "empty", tmp_path / "none.png") is None
    # a run's own results pick its units out of a folder that holds earlier ones too
    results = [{k: v for k, v in u.items() if k != "head_loss"} for u in only_seg]
    assert head_loss_units(tmp_path, results) == only_seg
