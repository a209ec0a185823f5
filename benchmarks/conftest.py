"""Micro-benchmarks: one intra-op thread (stable figures on a shared 2-core CPU); the roofline
table (achieved GFLOP/s, share of the matmul roofline, time ratio to the reference) printed last."""

import os

import torch
from _kernel_bench import ROOFLINE_ROWS, roofline_table

torch.set_num_threads(int(os.environ.get("SISTA_BENCH_THREADS", "1")))


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the roofline rows measured in this run (``test_bench_roofline.py``)."""
    if not ROOFLINE_ROWS:
        return
    terminalreporter.write_sep("-", "roofline: forward + backward, fp32, one thread (ref_ratio < 1 = faster)")
    for line in roofline_table(ROOFLINE_ROWS):
        terminalreporter.write_line(line)
