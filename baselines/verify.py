"""Check our GLoRIA / MGCA losses against reference cases computed with the official code.

    python -m sista_kit.baselines.verify tests/fixtures/baselines/*.npz
    python -m sista_kit.baselines.verify            # the default fixture folder (see below)

For every file (``gloria_*.npz`` or ``mgca_*.npz``, layout in the fixtures' README) it computes every
stored loss term, intermediate and gradient in float64 and prints, per key, the worst relative error
max|ours - ref| / max|ref|. Exit status: 0 when every key is within ``--tol`` (default 1e-6), 1
otherwise, 2 when a file cannot be checked (missing, unknown name or keys).

Default folder: ``$SISTA_FIXTURES`` (or its ``baselines/`` subfolder), else
``<repo>/tests/fixtures/baselines`` of the source checkout (provenance in its README).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .reference_cases import compare_case

DEFAULT_TOL = 1e-6


def default_fixture_dir() -> Path:
    """The reference-case folder: $SISTA_FIXTURES[/baselines], else <repo>/tests/fixtures/baselines."""
    env = os.environ.get("SISTA_FIXTURES")
    if env:
        root = Path(env)
        return root / "baselines" if (root / "baselines").is_dir() else root
    repo = Path(__file__).resolve().parents[1]
    return repo / "tests" / "fixtures" / "baselines"


def _format_table(path: Path, rows: list[tuple[str, tuple[int, ...], float, float]], tol: float) -> str:
    lines = [f"{path}", f"  {'key':<22} {'shape':<14} {'max|ref|':>10} {'rel. error':>11}  status"]
    for key, shape, scale, err in rows:
        status = "ok" if err <= tol else "FAIL"
        lines.append(f"  {key:<22} {str(shape):<14} {scale:>10.3g} {err:>11.2e}  {status}")
    return "\n".join(lines)


def verify_files(
    paths: Sequence[str | Path], tol: float = DEFAULT_TOL, out: TextIO | None = None
) -> dict[str, float]:
    """Check each file, print its table to ``out`` (stdout); return the worst relative error per file."""
    out = sys.stdout if out is None else out
    worst: dict[str, float] = {}
    for path in map(Path, paths):
        rows = compare_case(path)
        print(_format_table(path, rows, tol), file=out)
        worst[str(path)] = max(err for *_, err in rows)
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m sista_kit.baselines.verify",
        description="Compare our GLoRIA/MGCA losses with reference cases from the official code.",
    )
    parser.add_argument(
        "files", nargs="*", help="gloria_*.npz / mgca_*.npz (default: every case in the fixture folder)"
    )
    parser.add_argument(
        "--tol", type=float, default=DEFAULT_TOL, help="largest accepted relative error (1e-6)"
    )
    args = parser.parse_args(argv)
    files = list(args.files)
    if not files:
        folder = default_fixture_dir()
        files = sorted(str(p) for p in folder.glob("*.npz") if p.name.startswith(("gloria_", "mgca_")))
        if not files:
            print(f"error: no gloria_*.npz / mgca_*.npz in {folder} (set SISTA_FIXTURES)", file=sys.stderr)
            return 2
    try:
        worst = verify_files(files, args.tol)
    except (OSError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    overall = max(worst.values())
    failed = [f for f, e in worst.items() if e > args.tol]
    print(
        f"\n{len(worst)} file(s), worst relative error {overall:.2e} (tolerance {args.tol:g}): "
        + ("FAILED " + ", ".join(failed) if failed else "all within tolerance")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
