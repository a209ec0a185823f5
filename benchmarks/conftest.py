"""Micro-benchmarks: one intra-op thread (stable figures on a shared 2-core CPU)."""

import os

import torch

torch.set_num_threads(int(os.environ.get("SISTA_BENCH_THREADS", "1")))
