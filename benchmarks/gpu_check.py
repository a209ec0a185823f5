"""One-shot GPU check: the kernel tests and the kernel benchmarks, on one harness, in one results schema.

    python benchmarks/gpu_check.py [--csv results.csv]      # on a CUDA machine, a few minutes
    python benchmarks/gpu_check.py --dry-run                 # CPU, Triton interpreter, small shapes

A thin driver, with no test or benchmark of its own:

1. Correctness: ``pytest tests/kernels`` (forward and gradients of every kernel against the PyTorch
   reference, fp32 / bf16, odd shapes, GPU tile sizes). On a GPU the tests run on CUDA; with
   ``--dry-run`` (or without a GPU) under ``TRITON_INTERPRET=1``, slow tests left out.
2. Speed and memory: ``pytest benchmarks/test_bench_kernels.py --benchmark-only`` (torch eager,
   torch.compile, chunked and Triton paths; median time, peak memory). ``--dry-run`` keeps the
   small regime without torch.compile.

Every test and every benchmark becomes one row of :data:`RESULT_FIELDS` (with the sista_kit
version, the device, torch and triton versions and the date), appended to ``--csv``; a table is
printed last. Needs the repository's environment (``scripts/install.sh``). Exit status 1 when a
test fails or a stage cannot run.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
KERNEL_TESTS = "tests/kernels"
KERNEL_BENCH = "benchmarks/test_bench_kernels.py"
#: The results schema: one row per test or benchmark.
RESULT_FIELDS = [
    "date",
    "sista_kit",
    "device",
    "torch",
    "triton",
    "kind",
    "name",
    "status",
    "median_ms",
    "peak_mib",
    "detail",
]


def environment(interpreter: bool) -> dict[str, str]:
    """Date, sista_kit / torch / triton versions and the device name, shared by every row."""
    import torch

    import sista_kit

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "absent"
    if torch.cuda.is_available() and not interpreter:
        device = torch.cuda.get_device_name(0)
    else:
        device = "cpu (Triton interpreter)" if interpreter else f"cpu ({os.cpu_count()} cores)"
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "sista_kit": sista_kit.__version__,
        "device": device,
        "torch": torch.__version__,
        "triton": triton_version,
    }


def _pytest(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    print("$", " ".join(cmd), flush=True)
    try:
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s"
    tail = (done.stdout + done.stderr).strip().splitlines()
    print("\n".join(tail[-5:]), flush=True)
    return done.returncode, "\n".join(tail[-40:])


def test_rows(junit: Path) -> list[dict[str, str]]:
    """One row per test case of a JUnit XML report: status passed / failed / skipped."""
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        status, detail = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                status = "skipped" if tag == "skipped" else "failed"
                detail = (found.get("message") or "").splitlines()[0][:200] if found.get("message") else tag
                break
        name = f"{case.get('classname', '')}::{case.get('name', '')}".removeprefix("tests.")
        rows.append({"kind": "test", "name": name, "status": status, "detail": detail})
    return rows


def bench_rows(report: Path) -> list[dict[str, str]]:
    """One row per benchmark of a pytest-benchmark JSON report (median ms, peak MiB)."""
    rows = []
    for bench in json.loads(report.read_text()).get("benchmarks", []):
        extra = bench.get("extra_info", {})
        peak = extra.get("peak_mib")
        rows.append(
            {
                "kind": "benchmark",
                "name": f"{bench.get('group') or ''} {extra.get('impl', bench['name'])}".strip(),
                "status": "measured",
                "median_ms": f"{bench['stats']['median'] * 1e3:.3f}",
                "peak_mib": "" if peak is None else f"{peak:.1f}",
                "detail": extra.get("shape", ""),
            }
        )
    return rows


def stage_row(kind: str, name: str, code: int, log: str) -> dict[str, str]:
    """A row for a stage that did not produce its report (collection error, timeout, crash)."""
    return {"kind": kind, "name": name, "status": "failed", "detail": f"exit {code}: {log[-300:]}"}


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """Append ``rows`` to ``path`` in the results schema (header written once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def table(rows: list[dict[str, str]], env: dict[str, str]) -> str:
    """The summary: versions and device, test counts and failures, then every benchmark."""
    tests = [r for r in rows if r["kind"] == "test"]
    counts = {s: sum(r["status"] == s for r in tests) for s in ("passed", "failed", "skipped")}
    lines = [
        f"sista_kit {env['sista_kit']} | torch {env['torch']} | triton {env['triton']} | {env['device']}",
        "",
        "CORRECTNESS (tests)",
        f"  {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped",
    ]
    lines += [f"  FAILED {r['name']}: {r['detail']}" for r in rows if r["status"] == "failed"]
    lines += ["", "SPEED / MEMORY (benchmarks)", f"  {'benchmark':60s} {'median ms':>10s} {'peak MiB':>10s}"]
    for r in rows:
        if r["kind"] == "benchmark":
            lines.append(f"  {r['name'][:60]:60s} {r['median_ms']:>10s} {r['peak_mib'] or '-':>10s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run both stages; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "gpu_check.csv")
    p.add_argument("--dry-run", action="store_true", help="CPU, Triton interpreter, small shapes")
    p.add_argument("--timeout", type=float, default=420.0, help="seconds for both stages together")
    p.add_argument("--skip-bench", action="store_true", help="correctness only")
    args = p.parse_args(argv)

    import torch

    interpreter = args.dry_run or not torch.cuda.is_available()
    env = dict(os.environ)
    if interpreter:
        env.update(TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="")
    shared = environment(interpreter)
    deadline = dt.datetime.now().timestamp() + args.timeout
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "tests.xml"
        test_args = [KERNEL_TESTS, f"--junitxml={junit}", "--ignore=tests/kernels/test_gpu_check_script.py"]
        if interpreter:
            test_args += ["-m", "not slow"]
        budget = max(30.0, 0.6 * args.timeout)
        code, log = _pytest(test_args, env, budget)
        if junit.is_file():
            rows += test_rows(junit)
        if code not in (0, 1) or not junit.is_file():
            rows.append(stage_row("test", KERNEL_TESTS, code, log))
        if not args.skip_bench:
            report = Path(tmp) / "bench.json"
            bench_args = [KERNEL_BENCH, "--benchmark-only", f"--benchmark-json={report}"]
            if interpreter:
                bench_args += ["-k", "small and not compile"]
            left = max(30.0, deadline - dt.datetime.now().timestamp())
            code, log = _pytest(bench_args, env, left)
            if report.is_file():
                rows += bench_rows(report)
            if code != 0 or not report.is_file():
                rows.append(stage_row("benchmark", KERNEL_BENCH, code, log))
    rows = [{**shared, **r} for r in rows]
    write_csv(args.csv, rows)
    print(table(rows, shared), flush=True)
    failed = any(r["status"] == "failed" for r in rows) or not any(r["kind"] == "test" for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
