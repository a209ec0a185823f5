"""Reference cases of the baselines: $SISTA_FIXTURES, else tests/fixtures/baselines in the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def baseline_fixture_dir() -> Path:
    """Folder holding gloria_case*.npz / mgca_case*.npz; a missing folder fails the test."""
    env = os.environ.get("SISTA_FIXTURES")
    if env:
        root = Path(env)
        path = root / "baselines" if (root / "baselines").is_dir() else root
    else:
        path = Path(__file__).resolve().parents[1] / "fixtures" / "baselines"
    if not path.is_dir():
        pytest.fail(f"baseline reference cases not found at {path}; set SISTA_FIXTURES")
    return path


@pytest.fixture(scope="session")
def baseline_cases(baseline_fixture_dir: Path) -> list[Path]:
    """Every reference case file; fails unless there are GLoRIA and MGCA cases."""
    files = sorted(baseline_fixture_dir.glob("*.npz"))
    kinds = {p.name.split("_")[0] for p in files}
    if not {"gloria", "mgca"} <= kinds:
        pytest.fail(
            f"expected gloria_*.npz and mgca_*.npz in {baseline_fixture_dir}, found {[p.name for p in files]}"
        )
    return files
