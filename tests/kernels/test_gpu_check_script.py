"""The GPU check driver: its report parsing and results schema, and a whole --dry-run on CPU."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import gpu_check  # noqa: E402

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
  <testcase classname="tests.kernels.test_a" name="test_ok[fp32]" time="0.1"/>
  <testcase classname="tests.kernels.test_a" name="test_bad" time="0.1">
    <failure message="AssertionError: grad differs&#10;more">trace</failure></testcase>
  <testcase classname="tests.kernels.test_b" name="test_gpu_only" time="0">
    <skipped message="needs a CUDA device"/></testcase>
</testsuite></testsuites>
"""

BENCH = {
    "benchmarks": [
        {
            "name": "test_bench_sia[small-triton]",
            "group": "sia[Z given, eliminate] small",
            "stats": {"median": 0.0025},
            "extra_info": {"impl": "triton", "shape": "B=256,D=128", "peak_mib": 1.25},
        }
    ]
}


def test_reports_become_rows_of_one_schema(tmp_path):
    (tmp_path / "t.xml").write_text(JUNIT)
    (tmp_path / "b.json").write_text(json.dumps(BENCH))
    rows = gpu_check.test_rows(tmp_path / "t.xml") + gpu_check.bench_rows(tmp_path / "b.json")
    assert [r["status"] for r in rows] == ["passed", "failed", "skipped", "measured"]
    assert (
        rows[1]["name"] == "kernels.test_a::test_bad" and rows[1]["detail"] == "AssertionError: grad differs"
    )
    assert rows[3] | {} == {
        "kind": "benchmark",
        "name": "sia[Z given, eliminate] small triton",
        "status": "measured",
        "median_ms": "2.500",
        "peak_mib": "1.2",
        "detail": "B=256,D=128",
    }
    env = {"date": "d", "sista_kit": "9.9", "device": "cpu (Triton interpreter)", "torch": "t", "triton": "x"}
    gpu_check.write_csv(tmp_path / "r.csv", [{**env, **r} for r in rows])
    gpu_check.write_csv(tmp_path / "r.csv", [{**env, **rows[0]}])  # appends, one header
    with (tmp_path / "r.csv").open() as handle:
        back = list(csv.DictReader(handle))
    assert list(back[0]) == gpu_check.RESULT_FIELDS and len(back) == 5
    text = gpu_check.table([{**env, **r} for r in rows], env)
    assert "sista_kit 9.9" in text and "1 passed, 1 failed, 1 skipped" in text
    assert "FAILED kernels.test_a::test_bad" in text and "2.500" in text


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    """``bash benchmarks/gpu_check.sh --dry-run`` as a user runs it: both stages, CSV and table."""
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    env.pop("SISTA_KERNELS", None)
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=460,
    )
    log = result.stdout + result.stderr
    assert "CORRECTNESS (tests)" in result.stdout and "SPEED / MEMORY" in result.stdout, log[-3000:]
    with (tmp_path / "gpu_check.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["kind"] for r in rows} == {"test", "benchmark"}
    assert all(r["device"] == "cpu (Triton interpreter)" and r["sista_kit"] for r in rows)
    assert sum(r["kind"] == "test" for r in rows) >= 20
    assert any(r["name"].endswith("torch eager") and float(r["median_ms"]) > 0 for r in rows)
    assert (tmp_path / "gpu_check.log").is_file()
    failed = [r["name"] for r in rows if r["status"] == "failed"]
    assert result.returncode == 0 and not failed, f"failed: {failed}\n{log[-3000:]}"
