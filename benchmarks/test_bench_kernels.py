"""Micro-benchmarks of the kernel paths: STA sparse grouping and the SIA instance loss.

    pytest benchmarks/test_bench_kernels.py --benchmark-only

Forward + backward of each path, median time and peak memory, appended to
``benchmarks/results/kernels.csv`` with the device, torch / triton versions and the date.
On CPU (fp32, one thread): torch eager, torch.compile (medical regime) and the chunked SIA path,
at small and medical scale. On CUDA (bf16) the Triton kernels join, plus the large-scale SIA regime
(B = 32768 .. 262144, D = 512; the dense path only while its B x B logits fit).
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from _kernel_bench import append_row, environment, median_ms, peak_memory, synchronized

from sista_kit.losses.chunked_infonce import fn_aware_infonce_chunked
from sista_kit.losses.functional import fn_aware_infonce, sparse_grouped_embeddings

torch.set_num_threads(1)
CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
DTYPE = torch.bfloat16 if CUDA else torch.float32
CSV_NAME = "kernels.csv"

STA_SHAPES = {"small": (16, 32, 49, 64), "medical": (256, 112, 196, 128)}  # B, L, P, D
SIA_SHAPES = {"small": (256, 128), "medical": (4096, 128)}  # B, D
if CUDA:
    SIA_SHAPES.update({"large-32k": (32768, 512), "large-64k": (65536, 512), "large-256k": (262144, 512)})
DENSE_MAX_BATCH = 65536  # dense logits beyond this do not fit next to the rest
REPORT_RANK = 64
THRESHOLD = 0.9


def _impls(op: str, regime: str) -> list[str]:
    impls = ["torch eager"]
    if op == "sia":
        impls.append("torch chunked")
    if CUDA or regime == "medical":  # one compile per op on CPU keeps the run within minutes
        impls.append("torch.compile")
    if CUDA:
        impls.append("triton")
    if op == "sia" and SIA_SHAPES[regime][0] > DENSE_MAX_BATCH:
        impls = [i for i in impls if i in ("torch chunked", "triton")]
    return impls


def _rounds(regime: str) -> int:
    if CUDA:
        return 5 if regime.startswith("large") else 20
    return 5 if regime == "small" else 3


@functools.cache
def _compiled(fn):
    return torch.compile(fn, dynamic=False)


def _sta_step(impl: str, regime: str, sparsify: str):
    from sista_kit.kernels import sparse_grouped_embeddings_triton

    batch, length, patches, dim = STA_SHAPES[regime]
    gen = torch.Generator().manual_seed(0)
    image = (
        F.normalize(torch.randn(batch, patches, dim, generator=gen), dim=-1)
        .to(DEVICE, DTYPE)
        .requires_grad_()
    )
    text = (
        F.normalize(torch.randn(batch, length, dim, generator=gen), dim=-1).to(DEVICE, DTYPE).requires_grad_()
    )
    lengths = torch.randint(length // 2, length + 1, (batch, 1), generator=gen)
    mask = (torch.arange(length) < lengths).to(DEVICE)
    upstream = torch.randn(batch, length, dim, generator=gen).to(DEVICE, DTYPE)
    fn = {
        "torch eager": sparse_grouped_embeddings,
        "torch.compile": _compiled(sparse_grouped_embeddings),
        "triton": sparse_grouped_embeddings_triton,
    }[impl]

    def step() -> None:
        image.grad = text.grad = None
        fn(image, text, mask, sparsify=sparsify, k=8).backward(upstream)

    return step, f"B={batch},L={length},P={patches},D={dim}"


def _dense_from_embeddings(image, text, scale, report_embeddings, threshold):
    """The dense reference as the SIA module runs it: S = Z Z^T first, then the B x B loss."""
    sim = (report_embeddings @ report_embeddings.T).clamp_(-1.0, 1.0)
    return fn_aware_infonce(image, text, scale, sim, threshold=threshold)


def _sia_step(impl: str, regime: str):
    from sista_kit.kernels import fn_aware_infonce_tiled

    batch, dim = SIA_SHAPES[regime]
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(batch, dim, generator=gen).to(DEVICE, DTYPE).requires_grad_()
    text = torch.randn(batch, dim, generator=gen).to(DEVICE, DTYPE).requires_grad_()
    z = F.normalize(torch.randn(batch, REPORT_RANK, generator=gen), dim=-1).to(DEVICE)
    z[1::9] = z[0]  # some duplicated reports
    fn = {
        "torch eager": _dense_from_embeddings,
        "torch.compile": _compiled(_dense_from_embeddings),
        "torch chunked": functools.partial(fn_aware_infonce_chunked, chunk_size=1024),
        "triton": fn_aware_infonce_tiled,
    }[impl]

    def step() -> None:
        image.grad = text.grad = None
        if impl in ("torch chunked", "triton"):
            loss = fn(image, text, 14.3, report_embeddings=z, threshold=THRESHOLD)
        else:
            loss = fn(image, text, 14.3, z, THRESHOLD)
        loss.backward()

    return step, f"B={batch},D={dim},R={REPORT_RANK}"


def _record(benchmark, op: str, regime: str, impl: str, shape: str, step) -> None:
    peak, method = peak_memory(step, DEVICE)
    ms = median_ms(benchmark)
    benchmark.extra_info.update(shape=shape, impl=impl, peak_mib=peak, memory_method=method)
    append_row(
        CSV_NAME,
        {
            **environment(DEVICE),
            "op": op,
            "regime": regime,
            "shape": shape,
            "dtype": str(DTYPE).replace("torch.", ""),
            "impl": impl,
            "median_ms": "" if ms is None else f"{ms:.3f}",
            "peak_mib": "" if peak is None else f"{peak:.1f}",
            "memory_method": method,
        },
    )


STA_CASES = [
    (regime, impl, sparsify)
    for regime in STA_SHAPES
    for impl in _impls("sta", regime)
    for sparsify in ("threshold", "topk")
    if sparsify == "threshold" or impl != "torch.compile"
]
SIA_CASES = [(regime, impl) for regime in SIA_SHAPES for impl in _impls("sia", regime)]


@pytest.mark.parametrize("regime, impl, sparsify", STA_CASES)
def test_bench_sta_grouping(benchmark, regime, impl, sparsify):
    benchmark.group = f"sta_grouping[{sparsify}] {regime}"
    step, shape = _sta_step(impl, regime, sparsify)
    benchmark.pedantic(synchronized(step, DEVICE), rounds=_rounds(regime), iterations=1, warmup_rounds=1)
    _record(benchmark, f"sta_grouping[{sparsify}]", regime, impl, shape, step)


@pytest.mark.parametrize("regime, impl", SIA_CASES)
def test_bench_sia(benchmark, regime, impl):
    benchmark.group = f"sia[Z given, eliminate] {regime}"
    step, shape = _sia_step(impl, regime)
    benchmark.pedantic(synchronized(step, DEVICE), rounds=_rounds(regime), iterations=1, warmup_rounds=1)
    _record(benchmark, "sia[Z given, eliminate]", regime, impl, shape, step)
