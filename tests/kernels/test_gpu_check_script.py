"""The GPU check script's code paths, on CPU under the interpreter with tiny shapes (--dry-run)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    """Runs the whole script as a GPU machine would, from a plain checkout (no installed package)."""
    out = tmp_path / "gpu_check.csv"
    env = dict(os.environ, TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="", PYTHONNOUSERSITE="1")
    env.pop("SISTA_KERNELS", None)
    code = (
        "import sys, importlib.abc\n"
        # hide an installed sista_kit.kernels mapping so that the script's own shim is exercised
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'sista_kit.kernels' and 'sista_kit.kernels' not in sys.modules:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "sys.argv = ['gpu_check.py', '--dry-run', '--seed', '7', '--csv', sys.argv[1]]\n"
        "sys.path.insert(0, 'benchmarks')\n"
        "import gpu_check\n"
        "sys.exit(gpu_check.main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert "CORRECTNESS" in result.stdout and "SPEED / MEMORY" in result.stdout, log[-3000:]
    table = result.stdout[result.stdout.rindex("CORRECTNESS") :]
    correctness = table[: table.index("SPEED / MEMORY")].splitlines()[2:]
    correctness = [line for line in correctness if line.strip()]
    assert len(correctness) == 16, correctness  # 8 checks x (fp32, bf16)
    assert all(line.rstrip().endswith(" ok") for line in correctness), "\n".join(correctness)
    assert result.returncode == 0, log[-3000:]
    assert "ERROR" not in table, table
    for impl in ("torch eager", "triton", "triton tiled"):
        assert f" {impl} " in table, impl
    assert " open_clip ClipLoss " in table or " dense (ClipLoss math) " in table
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {"error", "median_ms"} <= {row["kind"] for row in rows}
    assert all(row["device"] == "cpu (Triton interpreter)" for row in rows)
