"""Loss-level benchmarks with targets: vectorised STA vs a per-sample loop; chunked vs dense SIA memory.

    pytest benchmarks/test_bench_losses.py --benchmark-only -s

1. STA forward + backward at B=64, L=64, P=64, D=128: ``sparse_token_align_loss`` (vectorised) against
   ``sta_loop`` (tests/losses/reference_loops.py: the same math pair by pair, word by word).
   Target: the vectorised path >= 5x faster.
2. SIA forward + backward at B=16384, D=256 with report embeddings Z (R=64): the chunked path
   (chunk 512, no B x B buffer) against the dense reference (S = Z Z^T, then B x B logits), peak
   memory of one call (see ``_kernel_bench.peak_memory`` for how). Target: chunked <= 1/10 of dense.
Ratios are printed and appended to ``benchmarks/results/losses.csv``.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _kernel_bench import append_row, environment, median_ms, peak_memory

from sista_kit.losses.chunked_infonce import fn_aware_infonce_chunked
from sista_kit.losses.functional import fn_aware_infonce, sparse_token_align_loss

torch.set_num_threads(1)
DEVICE = torch.device("cpu")
CSV_NAME = "losses.csv"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _sta_loop():
    """The per-sample loop implementation kept with the loss tests."""
    path = REPO_ROOT / "tests" / "losses" / "reference_loops.py"
    spec = importlib.util.spec_from_file_location("sista_reference_loops", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sta_loop


def _row(
    op: str, shape: str, impl: str, ms: float | None, peak: float | None, method: str, note: str = ""
) -> None:
    append_row(
        CSV_NAME,
        {
            **environment(DEVICE),
            "op": op,
            "regime": "target",
            "shape": shape,
            "dtype": "float32",
            "impl": impl,
            "median_ms": "" if ms is None else f"{ms:.3f}",
            "peak_mib": "" if peak is None else f"{peak:.1f}",
            "memory_method": method,
            "note": note,
        },
    )


def _median_wall_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def test_bench_sta_vectorised_vs_loop(benchmark):
    batch, length, patches, dim = 64, 64, 64, 128
    shape = f"B={batch},L={length},P={patches},D={dim}"
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(batch, patches, dim, generator=gen, requires_grad=True)
    text = torch.randn(batch, length, dim, generator=gen, requires_grad=True)
    mask = torch.ones(batch, length, dtype=torch.bool)  # every word real: both paths see the same words
    sta_loop = _sta_loop()

    def vectorised() -> torch.Tensor:
        image.grad = text.grad = None
        loss = sparse_token_align_loss(image, text, mask, backend="torch")
        loss.backward()
        return loss

    def loop() -> torch.Tensor:
        image.grad = text.grad = None
        loss = sta_loop(image, text, mask)
        loss.backward()
        return loss

    torch.testing.assert_close(vectorised().detach(), loop().detach(), rtol=1e-4, atol=1e-5)
    benchmark.group = "sta vectorised vs loop"
    benchmark.pedantic(vectorised, rounds=5, iterations=1, warmup_rounds=1)
    fast = median_ms(benchmark) or _median_wall_ms(vectorised, 5)
    slow = _median_wall_ms(loop, 3)
    ratio = slow / fast
    benchmark.extra_info.update(vectorised_ms=fast, loop_ms=slow, speedup=ratio)
    print(f"\nSTA fwd+bwd {shape}: vectorised {fast:.1f} ms, loop {slow:.1f} ms, speed-up {ratio:.1f}x")
    _row("sta_loss", shape, "vectorised", fast, None, "", f"speed-up vs loop {ratio:.1f}x")
    _row("sta_loss", shape, "per-sample loop", slow, None, "")
    assert ratio >= 5.0, f"vectorised STA only {ratio:.1f}x faster than the loop (target >= 5x)"


def test_bench_sia_chunked_vs_dense_memory(benchmark):
    batch, dim, rank, chunk = 16384, 256, 64, 512
    shape = f"B={batch},D={dim},R={rank}"
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(batch, dim, generator=gen, requires_grad=True)
    text = torch.randn(batch, dim, generator=gen, requires_grad=True)
    z = F.normalize(torch.randn(batch, rank, generator=gen), dim=-1)
    z[1::9] = z[0]

    def chunked() -> torch.Tensor:
        image.grad = text.grad = None
        loss = fn_aware_infonce_chunked(
            image, text, 14.3, report_embeddings=z, threshold=0.9, chunk_size=chunk
        )
        loss.backward()
        return loss

    def dense() -> torch.Tensor:
        image.grad = text.grad = None
        sim = (z @ z.T).clamp_(-1.0, 1.0)
        loss = fn_aware_infonce(image, text, 14.3, sim, threshold=0.9)
        loss.backward()
        return loss

    benchmark.group = "sia chunked vs dense"
    measured = []  # one timed round that also samples its peak memory (a chunked call takes ~30 s on CPU)
    benchmark.pedantic(lambda: measured.append(peak_memory(chunked, DEVICE)), rounds=1, iterations=1)
    chunked_ms = median_ms(benchmark)
    chunked_peak, method = measured[-1]
    dense_peak, _ = peak_memory(dense, DEVICE)
    if chunked_peak is None or dense_peak is None:
        pytest.fail(f"peak memory not measurable here ({method})")
    ratio = chunked_peak / dense_peak
    benchmark.extra_info.update(
        chunked_peak_mib=chunked_peak, dense_peak_mib=dense_peak, ratio=ratio, memory_method=method
    )
    print(
        f"\nSIA fwd+bwd {shape}: peak chunked {chunked_peak:.0f} MiB, dense {dense_peak:.0f} MiB "
        f"({method}); chunked / dense = 1/{1 / ratio:.1f}"
    )
    _row(
        "sia_loss",
        shape,
        f"chunked({chunk})",
        chunked_ms,
        chunked_peak,
        method,
        f"chunked/dense = {ratio:.3f}",
    )
    _row("sia_loss", shape, "dense", None, dense_peak, method)
    assert ratio <= 0.1, f"chunked SIA peak is {ratio:.2f} of dense (target <= 1/10)"
