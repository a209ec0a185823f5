"""The benchmark's main job at smoke size: outputs follow the schema; a resumed run redoes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from suite.profiles import METHODS  # noqa: E402
from suite.results import RECORD_FIELDS, load_records  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    import run

    out = tmp_path_factory.mktemp("bench") / "out"
    assert run.main(["--profile", "smoke", "--tasks", "cls,seg,det", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_smoke_outputs_follow_schema(smoke):
    records = load_records(smoke)  # validates every record
    assert {tuple(sorted(r)) for r in records} == {tuple(sorted(RECORD_FIELDS))}
    csv_lines = (smoke / "results.csv").read_text().strip().splitlines()
    assert csv_lines[0].split(",") == list(RECORD_FIELDS) and len(csv_lines) == len(records) + 1
    seen = {(r["method"], r["task"], r["fraction"]) for r in records if r["fraction"] is not None}
    assert seen == {(m, t, f) for m in METHODS for t in ("cls", "seg", "det") for f in (0.1, 1.0)}
    tasks = {r["task"] for r in records}
    assert {"fn_detection", "retrieval", "grounding"} <= tasks
    table = (smoke / "results.md").read_text()
    for heading in ("### cls /", "### seg /", "### det /", "**"):
        assert heading in table
    for name in ("fraction_curves.png", "alignment_maps.png"):
        assert (smoke / name).stat().st_size > 10_000
    info = json.loads((smoke / "run_info.json").read_text())
    assert info["versions"]["torch"] and info["wall_s"]["total"] > 0 and info["units_run"] > 0
    assert (smoke / "splits" / "train.txt").is_file() and (smoke / "splits" / "train_f0.1_s0.txt").is_file()


@pytest.mark.slow
def test_resumed_run_skips_finished_work(smoke):
    import run

    before = (smoke / "results.json").read_text()
    assert run.main(["--profile", "smoke", "--tasks", "cls,seg,det", "--out", str(smoke), "--resume"]) == 0
    info = json.loads((smoke / "run_info.json").read_text())
    assert info["units_run"] == 0 and info["units_reused"] > 0
    assert (smoke / "results.json").read_text() == before


def test_refuses_to_overwrite_without_resume(tmp_path):
    import run

    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(SystemExit, match="--resume"):
        run.main(["--profile", "smoke", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown choice"):
        run.main(["--tasks", "cls,vqa", "--out", str(tmp_path / "new")])
