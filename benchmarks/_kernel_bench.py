"""Shared helpers of the kernel / loss micro-benchmarks: peak memory, environment, CSV rows.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above what was allocated before the call.
On CPU, the process's resident set size sampled every 0.5 ms by a background thread, above its value
before the call, with glibc's mmap threshold pinned to 1 MiB first, so that every large buffer is
mapped on allocation and unmapped on free (RSS then follows torch's large allocations closely).
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import datetime as dt
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CSV_FIELDS = [
    "date",
    "device",
    "torch",
    "triton",
    "sista_kit",
    "threads",
    "op",
    "regime",
    "shape",
    "dtype",
    "impl",
    "median_ms",
    "peak_mib",
    "memory_method",
    "gflops",
    "roofline",
    "ref_ratio",
    "note",
]
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_mmap_pinned = False


def environment(device: torch.device) -> dict[str, str]:
    """Date, device name, torch / triton / sista-kit versions and thread count for a CSV row."""
    import sista_kit

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "absent"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "device": name,
        "torch": torch.__version__,
        "triton": triton_version,
        "sista_kit": sista_kit.__version__,
        "threads": str(torch.get_num_threads()),
    }


def append_row(filename: str, row: dict) -> Path:
    """Append one result row to ``benchmarks/results/<filename>`` (header written once)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / filename
    if path.exists():  # a file written with other columns is kept aside, not appended to
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        if header != CSV_FIELDS:
            path.rename(path.with_suffix(f".{dt.datetime.now():%Y%m%dT%H%M%S}.csv"))
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
    return path


def _pin_mmap_threshold() -> None:
    global _mmap_pinned
    if _mmap_pinned:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)  # 1 MiB (also turns off its dynamic raise)
    except OSError:
        pass
    _mmap_pinned = True


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Inside, glibc keeps freed buffers for the next allocation (mmap threshold 32 MiB, no trimming),
    as a caching allocator does, so that a timing counts arithmetic, not the kernel zeroing fresh pages.

    With glibc's adaptive defaults a buffer is sometimes mapped anew, sometimes reused, depending on
    what ran before: the page faults of a step then vary several-fold from run to run. On exit the
    thresholds go back to what :func:`peak_memory` needs (1 MiB) or to glibc's default (128 KiB).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        yield
        return
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    try:
        yield
    finally:
        libc.mallopt(_M_TRIM_THRESHOLD, 128 << 10)
        libc.mallopt(_M_MMAP_THRESHOLD, (1 << 20) if _mmap_pinned else 128 << 10)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE


def peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[float | None, str]:
    """(peak MiB of one call of ``fn`` above the memory in use before it, method name)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20, "cuda max_memory_allocated"
    if not os.path.exists("/proc/self/statm"):
        return None, "unavailable"
    _pin_mmap_threshold()
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    return (peak[0] - base) / 2**20, "cpu rss sampled (mmap threshold 1 MiB)"


def synchronized(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """``fn`` followed by a device synchronisation, so that wall-clock timings are honest on GPU."""

    def run() -> None:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run


def median_ms(benchmark) -> float | None:
    """Median time in ms from a pytest-benchmark fixture after it ran (None when disabled)."""
    stats = getattr(benchmark, "stats", None)
    if stats is None or getattr(benchmark, "disabled", False):
        return None
    return stats.stats.median * 1e3


def matmul_gflops(size: int = 1024, rounds: int = 5) -> float:
    """Achieved GFLOP/s of a float32 (size x size) @ (size x size) product: the roofline of a run."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    return 2 * size**3 / min(_timed(lambda: a @ b) for _ in range(rounds)) / 1e9


#: one dict per roofline case of this run, printed as a table at the end (``conftest.py``)
ROOFLINE_ROWS: list[dict[str, str]] = []
ROOFLINE_COLUMNS = (
    "op",
    "shape",
    "ours_ms",
    "gflops",
    "roofline",
    "x_floor",
    "reference",
    "ref_ms",
    "ref_ratio",
)


def roofline_table(rows: list[dict[str, str]]) -> list[str]:
    """The rows as aligned text lines, a header first."""
    cells = [list(ROOFLINE_COLUMNS)] + [[row[c] for c in ROOFLINE_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(ROOFLINE_COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each function, timed in turn round after round (after one warm-up each),
    so that load changes on a shared machine hit every entry alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(_timed(fn))
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}
