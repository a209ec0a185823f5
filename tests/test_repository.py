"""Repository-level checks: lint, packaging layout, and that CI runs the README's test command."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_lint_and_format_are_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed (it is part of the dev extra)")
    for args in (["check", "."], ["format", "--check", "."]):
        run = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_kernels_and_baselines_install_under_sista_kit_only():
    import sista_kit.baselines
    import sista_kit.kernels

    assert Path(sista_kit.kernels.__file__).parent == ROOT / "kernels"
    assert Path(sista_kit.baselines.__file__).parent == ROOT / "baselines"
    code = "import importlib.util as u; print(u.find_spec('kernels'), u.find_spec('baselines'))"
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True)
    assert str(ROOT) not in out.stdout, out.stdout
    assert importlib.util.find_spec("sista_kit.downstream") is not None


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"    {ci}\n" in readme, f"the README must show CI's command: {ci}"
    assert "benchmarks/run.py --tasks cls,seg,det" in readme


def test_nothing_reads_a_folder_beside_the_repository():
    """The repository stands alone: no code, test or script reaches for ``../shared`` or another sibling."""
    patterns = ("../shared", '"shared" / "fixtures"', 'parent / "shared"', "SISTA_SHARED")
    offenders = []
    for folder in ("sista_kit", "kernels", "baselines", "benchmarks", "tests", "scripts"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".sh"} or path == Path(__file__):
                continue
            text = path.read_text(errors="replace")
            offenders += [f"{path.relative_to(ROOT)}: {p}" for p in patterns if p in text]
    assert not offenders, offenders
    fixtures = ROOT / "tests" / "fixtures" / "baselines"
    assert sorted(p.name for p in fixtures.glob("*.npz")) == [
        f"{kind}_case{i}.npz" for kind in ("gloria", "mgca") for i in range(3)
    ]
    assert "Provenance" in (fixtures / "README.md").read_text()
