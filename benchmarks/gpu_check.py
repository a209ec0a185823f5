"""One-shot GPU check of the Triton kernels: correctness, speed, memory. Prints a table last.

    python benchmarks/gpu_check.py [--csv results.csv]      # on a CUDA machine, < 8 minutes
    python benchmarks/gpu_check.py --dry-run                 # CPU, Triton interpreter, tiny shapes

Needs only torch, triton and this repository (it need not be installed: the repository root goes on
sys.path and ``kernels/`` is registered as ``sista_kit.kernels`` when the package mapping is absent).

1. Correctness, fp32 and bf16, forward and backward, fresh random inputs (seed printed), every
   output buffer the kernels allocate poisoned with NaN: fused sparse alignment (threshold, top-k),
   the STA loss through backend="triton", the tiled InfoNCE (plain, S given / eliminate, Z given /
   positive) and the SIA module, each against the PyTorch reference in fp32.
2. Memory: tiled SIA at B=65536, D=512 against open_clip's ClipLoss (or, without open_clip, the same
   computation written out: two B x B logit matrices and symmetric cross-entropy), peak allocated
   memory above the inputs, and time; then a B=262144 run of the tiled kernel (Z given).
3. Speed (median of CUDA-event timings, forward + backward, bf16): STA at the medical-scale shape
   (B=256, L=112, P=196, D=128) for torch eager, torch.compile and Triton; SIA at B=4096 likewise
   (torch.compile is skipped once 60% of the time budget is spent).
Exit status 1 when a correctness check fails.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import importlib.util
import math
import os
import statistics
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def bootstrap(dry_run: bool) -> None:
    """Make ``sista_kit`` and ``sista_kit.kernels`` importable from a plain checkout."""
    if dry_run:
        import torch

        if not torch.cuda.is_available():
            os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are imported
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import sista_kit

    try:
        import sista_kit.kernels  # noqa: F401  (installed with the package-dir mapping)
    except ModuleNotFoundError:
        kernels_dir = REPO_ROOT / "kernels"
        spec = importlib.util.spec_from_file_location(
            "sista_kit.kernels", kernels_dir / "__init__.py", submodule_search_locations=[str(kernels_dir)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["sista_kit.kernels"] = module
        spec.loader.exec_module(module)
        sista_kit.kernels = module


# --------------------------------------------------------------------------------------------------
# measurement helpers
# --------------------------------------------------------------------------------------------------
def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn, device, reps: int, warmup: int = 2) -> float:
    """Median wall time of ``fn`` in ms (CUDA events on GPU)."""
    import torch

    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def peak_bytes(fn, device) -> int | None:
    """Peak allocated memory of one call of ``fn`` above what was allocated before (GPU only)."""
    import torch

    if device.type != "cuda":
        return None
    gc.collect()
    sync(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base


@contextmanager
def poisoned_outputs():
    """Every floating buffer created by torch.empty / torch.empty_like inside is filled with NaN,
    and the CUDA caching allocator's cached blocks hold NaN: outputs a kernel forgets to write
    show up as NaN."""
    import torch

    empty, empty_like = torch.empty, torch.empty_like

    def _poison(t):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            t.fill_(float("nan"))
        return t

    def poisoned_empty(*args, **kwargs):
        return _poison(empty(*args, **kwargs))

    def poisoned_empty_like(*args, **kwargs):
        return _poison(empty_like(*args, **kwargs))

    if torch.cuda.is_available():  # leave NaN in cached blocks of both pools
        small = [torch.full((1 << 16,), float("nan"), device="cuda") for _ in range(64)]
        large = torch.full((1 << 28,), float("nan"), device="cuda")
        del small, large
    torch.empty, torch.empty_like = poisoned_empty, poisoned_empty_like
    try:
        yield
    finally:
        torch.empty, torch.empty_like = empty, empty_like


def rel_err(actual, expected) -> float:
    """max |a - b| / max |b| in fp32 (inf when the output holds NaN / inf)."""
    import torch

    actual, expected = actual.detach().float(), expected.detach().float()
    if not torch.isfinite(actual).all():
        return math.inf
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item()


# --------------------------------------------------------------------------------------------------
# the check
# --------------------------------------------------------------------------------------------------
class Check:
    def __init__(self, device, dry_run: bool, seed: int, budget: float = 420.0):
        import torch

        self.device, self.dry_run, self.seed, self.budget = device, dry_run, seed, budget
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.correct: list[tuple[str, str, float, float, str]] = []  # name, dtype, error, limit, status
        self.timing: list[tuple[str, str, str, float | None, int | None]] = []  # op, shape, impl, ms, bytes
        self.t0 = time.perf_counter()

    # ---- inputs ----------------------------------------------------------------------------------
    def randn(self, *shape, dtype=None):
        import torch

        return torch.randn(*shape, generator=self.gen).to(self.device, dtype or torch.float32)

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", flush=True)

    def record(self, name, dtype, errors: dict, limit: float) -> None:
        worst = max(errors.values())
        status = "ok" if worst <= limit else "FAIL " + ", ".join(f"{k}={v:.2e}" for k, v in errors.items())
        self.correct.append((name, str(dtype).replace("torch.", ""), worst, limit, status))
        self.log(f"check {name} {dtype}: max rel err {worst:.2e} (limit {limit:.0e}) {status}")

    def guarded(self, name: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as err:  # keep going: report every failure in the table
            traceback.print_exc()
            self.correct.append((name, "-", math.inf, 0.0, f"ERROR {type(err).__name__}: {str(err)[:80]}"))

    # ---- correctness -----------------------------------------------------------------------------
    def sta_shapes(self):
        return (2, 5, 7, 12) if self.dry_run else (32, 112, 196, 128)

    def sia_shapes(self):
        return (19, 16, 6) if self.dry_run else (4096, 512, 128)

    def check_sparse_align(self, dtype, sparsify) -> None:
        import torch
        import torch.nn.functional as F

        from sista_kit.kernels import sparse_grouped_embeddings_triton
        from sista_kit.losses.functional import sparse_grouped_embeddings

        batch, length, patches, dim = self.sta_shapes()
        image = F.normalize(self.randn(batch, patches, dim), dim=-1).to(dtype).requires_grad_()
        text = F.normalize(self.randn(batch, length, dim), dim=-1).to(dtype).requires_grad_()
        mask = torch.rand(batch, length, generator=self.gen).to(self.device) > 0.3
        mask[:, 0] = True
        upstream = self.randn(batch, length, dim, dtype=dtype)
        options = dict(sparsify=sparsify, k=min(8, patches))
        with poisoned_outputs():
            out = sparse_grouped_embeddings_triton(image, text, mask, **options)
            g_image, g_text = torch.autograd.grad(out, (image, text), upstream)
        ref_image, ref_text = image.detach().float().requires_grad_(), text.detach().float().requires_grad_()
        ref = sparse_grouped_embeddings(ref_image, ref_text, mask, **options)
        r_image, r_text = torch.autograd.grad(ref, (ref_image, ref_text), upstream.float())
        errors = {
            "out": rel_err(out, ref),
            "d_image": rel_err(g_image, r_image),
            "d_text": rel_err(g_text, r_text),
        }
        self.record(f"sparse_align[{sparsify}]", dtype, errors, 2e-3 if dtype == torch.float32 else 3e-2)

    def check_sta_loss(self, dtype) -> None:
        import torch

        from sista_kit.losses.functional import sparse_token_align_loss

        batch, length, patches, dim = self.sta_shapes()
        image, text = (
            self.randn(batch, patches, dim, dtype=dtype),
            self.randn(batch, length, dim, dtype=dtype),
        )
        mask = torch.rand(batch, length, generator=self.gen).to(self.device) > 0.3
        mask[:, 0] = True
        results = []
        for backend, cast in (("triton", dtype), ("torch", torch.float32)):
            x, y = image.to(cast).requires_grad_(), text.to(cast).requires_grad_()
            with poisoned_outputs() if backend == "triton" else _null():
                loss = sparse_token_align_loss(x, y, mask, backend=backend)
                results.append((loss, *torch.autograd.grad(loss, (x, y))))
        errors = {n: rel_err(a, b) for n, a, b in zip(("loss", "d_image", "d_text"), *results, strict=True)}
        self.record("sta_loss(backend=triton)", dtype, errors, 2e-3 if dtype == torch.float32 else 3e-2)

    def check_infonce(self, dtype, source, strategy) -> None:
        import torch
        import torch.nn.functional as F

        from sista_kit.kernels import fn_aware_infonce_tiled
        from sista_kit.losses.functional import fn_aware_infonce

        batch, dim, rank = self.sia_shapes()
        image, text = (
            self.randn(batch, dim, dtype=dtype).requires_grad_(),
            self.randn(batch, dim, dtype=dtype),
        )
        text.requires_grad_()
        scale = torch.tensor(14.3, device=self.device, requires_grad=True)
        z = F.normalize(self.randn(batch, rank), dim=-1)
        z[1::5] = z[0]  # duplicated reports: real false negatives
        sim = z @ z.T if source != "none" else None
        kwargs = dict(threshold=0.5, strategy=strategy)
        with poisoned_outputs():
            if source == "embeddings":
                out = fn_aware_infonce_tiled(image, text, scale, report_embeddings=z, **kwargs)
            else:
                out = fn_aware_infonce_tiled(image, text, scale, sim, **kwargs)
            got = torch.autograd.grad(out, (image, text, scale))
        ref_in = (
            image.detach().float().requires_grad_(),
            text.detach().float().requires_grad_(),
            scale.detach().clone().requires_grad_(),
        )
        ref = fn_aware_infonce(*ref_in, sim, **kwargs)
        expected = torch.autograd.grad(ref, ref_in)
        errors = {"loss": rel_err(out, ref)}
        errors.update(
            {
                n: rel_err(a, b)
                for n, a, b in zip(("d_image", "d_text", "d_scale"), got, expected, strict=True)
            }
        )
        self.record(
            f"tiled_infonce[{source},{strategy}]", dtype, errors, 2e-3 if dtype == torch.float32 else 3e-2
        )

    def check_sia_module(self, dtype) -> None:
        import torch

        from sista_kit.losses import SemanticInstanceAlignLoss

        batch, dim, _ = self.sia_shapes()
        image, text = self.randn(batch, dim, dtype=dtype), self.randn(batch, dim, dtype=dtype)
        text[3::7] = text[2]
        results = []
        for backend, cast in (("triton", dtype), ("torch", torch.float32)):
            x, y = image.to(cast).requires_grad_(), text.to(cast).requires_grad_()
            module = SemanticInstanceAlignLoss("online", threshold=0.8, backend=backend)
            with poisoned_outputs() if backend == "triton" else _null():
                loss = module(
                    image_features=x, text_features=y, logit_scale=torch.tensor(20.0, device=self.device)
                )
                results.append((loss, *torch.autograd.grad(loss, (x, y))))
        errors = {n: rel_err(a, b) for n, a, b in zip(("loss", "d_image", "d_text"), *results, strict=True)}
        self.record("sia_module(backend=triton)", dtype, errors, 2e-3 if dtype == torch.float32 else 3e-2)

    def run_correctness(self) -> None:
        import torch

        for dtype in (torch.float32, torch.bfloat16):
            for sparsify in ("threshold", "topk"):
                self.guarded(f"sparse_align[{sparsify}]", self.check_sparse_align, dtype, sparsify)
            self.guarded("sta_loss", self.check_sta_loss, dtype)
            for source, strategy in (
                ("none", "eliminate"),
                ("matrix", "eliminate"),
                ("embeddings", "positive"),
                ("embeddings", "eliminate"),
            ):
                name = f"tiled_infonce[{source},{strategy}]"
                self.guarded(name, self.check_infonce, dtype, source, strategy)
            self.guarded("sia_module", self.check_sia_module, dtype)

    # ---- speed -----------------------------------------------------------------------------------
    def time_case(self, op: str, shape: str, impl: str, step, reps: int, memory: bool = True) -> None:
        try:
            ms = median_ms(step, self.device, reps, warmup=0 if self.dry_run else 2)
            peak = peak_bytes(step, self.device) if memory else None
        except Exception as err:
            traceback.print_exc()
            self.timing.append((op, shape, f"{impl} ERROR {type(err).__name__}", None, None))
            return
        self.timing.append((op, shape, impl, ms, peak))
        mem = "" if peak is None else f", peak {peak / 2**20:.1f} MiB"
        self.log(f"time {op} {shape} {impl}: {ms:.3f} ms{mem}")

    def compiled(self, fn):
        import torch

        if self.dry_run:
            return None  # compiling on CPU needs a C++ toolchain and minutes: GPU only
        if time.perf_counter() - self.t0 > self.budget * 0.6:
            self.log(f"torch.compile skipped: past 60% of the {self.budget:.0f} s budget")
            return None
        return torch.compile(fn, dynamic=False)

    def run_speed(self) -> None:
        import torch
        import torch.nn.functional as F

        from sista_kit.kernels import fn_aware_infonce_tiled, sparse_grouped_embeddings_triton
        from sista_kit.losses.functional import (
            fn_aware_infonce,
            sparse_grouped_embeddings,
            sparse_token_align_loss,
        )

        reps = 1 if self.dry_run else 20
        dtype = torch.bfloat16
        batch, length, patches, dim = (2, 5, 7, 12) if self.dry_run else (256, 112, 196, 128)
        shape = f"B={batch},L={length},P={patches},D={dim}"
        image = F.normalize(self.randn(batch, patches, dim), dim=-1).to(dtype).requires_grad_()
        text = F.normalize(self.randn(batch, length, dim), dim=-1).to(dtype).requires_grad_()
        mask = torch.rand(batch, length, generator=self.gen).to(self.device) > 0.2
        upstream = self.randn(batch, length, dim, dtype=dtype)

        def grouping_step(fn, **options):
            def step():
                image.grad = text.grad = None
                fn(image, text, mask, **options).backward(upstream)

            return step

        def loss_step(fn, **options):
            def step():
                image.grad = text.grad = None
                fn(image, text, mask, **options).backward()

            return step

        for sparsify in ("threshold", "topk"):
            op = f"sta_grouping[{sparsify}]"
            options = dict(sparsify=sparsify, k=min(8, patches))
            self.time_case(
                op, shape, "torch eager", grouping_step(sparse_grouped_embeddings, **options), reps
            )
            if sparsify == "threshold":
                compiled = self.compiled(sparse_grouped_embeddings)
                if compiled is not None:
                    self.time_case(op, shape, "torch.compile", grouping_step(compiled, **options), reps)
            self.time_case(
                op, shape, "triton", grouping_step(sparse_grouped_embeddings_triton, **options), reps
            )
        self.time_case(
            "sta_loss", shape, "torch eager", loss_step(sparse_token_align_loss, backend="torch"), reps
        )
        compiled = self.compiled(sparse_token_align_loss)
        if compiled is not None:
            self.time_case("sta_loss", shape, "torch.compile", loss_step(compiled, backend="torch"), reps)
        self.time_case(
            "sta_loss", shape, "triton", loss_step(sparse_token_align_loss, backend="triton"), reps
        )

        batch, dim = (19, 16) if self.dry_run else (4096, 512)
        shape = f"B={batch},D={dim}"
        feats = [self.randn(batch, dim, dtype=dtype).requires_grad_() for _ in range(2)]
        z = F.normalize(self.randn(batch, 8 if self.dry_run else 64), dim=-1)
        sim = z @ z.T

        def sia_step(fn, **options):
            def step():
                feats[0].grad = feats[1].grad = None
                fn(feats[0], feats[1], 14.3, **options).backward()

            return step

        op = "sia[S given, eliminate]"
        self.time_case(
            op, shape, "torch eager", sia_step(fn_aware_infonce, report_similarity=sim, threshold=0.5), reps
        )
        compiled = self.compiled(fn_aware_infonce)
        if compiled is not None:
            self.time_case(
                op, shape, "torch.compile", sia_step(compiled, report_similarity=sim, threshold=0.5), reps
            )
        self.time_case(
            op, shape, "triton", sia_step(fn_aware_infonce_tiled, report_similarity=sim, threshold=0.5), reps
        )
        self.time_case(
            "sia[Z given, eliminate]",
            shape,
            "triton",
            sia_step(fn_aware_infonce_tiled, report_embeddings=z, threshold=0.5),
            reps,
        )

    # ---- memory at scale -------------------------------------------------------------------------
    def run_large(self) -> None:
        import torch
        import torch.nn.functional as F

        from sista_kit.kernels import fn_aware_infonce_tiled

        dense, dense_name = dense_clip_loss()
        dtype = torch.bfloat16
        reps = 1 if self.dry_run else 5
        for batch in (24,) if self.dry_run else (65536,):
            dim = 16 if self.dry_run else 512
            shape = f"B={batch},D={dim}"
            feats = [F.normalize(self.randn(batch, dim), dim=-1).to(dtype).requires_grad_() for _ in range(2)]
            scale = torch.tensor(14.3, device=self.device)

            self.time_case("clip_loss", shape, dense_name, _loss_step(dense, feats, scale), reps)
            self.time_case(
                "clip_loss", shape, "triton tiled", _loss_step(fn_aware_infonce_tiled, feats, scale), reps
            )
            del feats
        batch = 32 if self.dry_run else 262144
        dim = 16 if self.dry_run else 512
        feats = [F.normalize(self.randn(batch, dim), dim=-1).to(dtype).requires_grad_() for _ in range(2)]
        z = F.normalize(self.randn(batch, 8 if self.dry_run else 64), dim=-1)

        def huge():
            feats[0].grad = feats[1].grad = None
            fn_aware_infonce_tiled(feats[0], feats[1], 14.3, report_embeddings=z, threshold=0.9).backward()

        self.time_case("sia[Z given, eliminate]", f"B={batch},D={dim}", "triton tiled", huge, 1)

    # ---- report ----------------------------------------------------------------------------------
    def table(self) -> str:
        lines = [
            "",
            "=" * 100,
            "CORRECTNESS (max relative error vs the PyTorch reference in fp32)",
            f"{'check':44s} {'dtype':9s} {'error':>10s} {'limit':>8s}  status",
        ]
        for name, dtype, err, limit, status in self.correct:
            lines.append(f"{name:44s} {dtype:9s} {err:10.2e} {limit:8.0e}  {status}")
        lines += [
            "",
            "SPEED / MEMORY (forward + backward, bf16; median ms; peak allocated above inputs;",
            "  ratio = this row / the triton row of the same op: > 1 means Triton is faster / smaller)",
            f"{'op':28s} {'shape':26s} {'impl':22s} {'ms':>10s} {'peak MiB':>10s} {'ratio':>14s}",
        ]
        triton_ms = {
            (op, shape): ms for op, shape, impl, ms, _ in self.timing if impl.startswith("triton") and ms
        }
        triton_mem = {
            (op, shape): b for op, shape, impl, _, b in self.timing if impl.startswith("triton") and b
        }
        for op, shape, impl, ms, peak in self.timing:
            ref = triton_ms.get((op, shape))
            ratio = f"{ms / ref:.2f}x" if ms and ref and not impl.startswith("triton") else ""
            ref_mem = triton_mem.get((op, shape))
            if peak and ref_mem and not impl.startswith("triton"):
                ratio += f" mem {peak / ref_mem:.0f}x"
            ms_s = f"{ms:10.3f}" if ms is not None else f"{'-':>10s}"
            mem_s = f"{peak / 2**20:10.1f}" if peak is not None else f"{'n/a':>10s}"
            lines.append(f"{op:28s} {shape:26s} {impl:22s} {ms_s} {mem_s} {ratio:>14s}")
        failed = sum(1 for row in self.correct if row[4] != "ok")
        lines += [
            "",
            f"{len(self.correct) - failed}/{len(self.correct)} correctness checks passed; "
            f"seed {self.seed}; {time.perf_counter() - self.t0:.0f} s",
            "=" * 100,
        ]
        return "\n".join(lines)

    def write_csv(self, path: Path, env: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(
                    [
                        "date",
                        "device",
                        "torch",
                        "triton",
                        "kind",
                        "name",
                        "shape",
                        "dtype_or_impl",
                        "value",
                        "peak_mib",
                        "status",
                    ]
                )
            for name, dtype, err, _limit, status in self.correct:
                writer.writerow(
                    [
                        env["date"],
                        env["device"],
                        env["torch"],
                        env["triton"],
                        "error",
                        name,
                        "",
                        dtype,
                        f"{err:.3e}",
                        "",
                        status,
                    ]
                )
            for op, shape, impl, ms, peak in self.timing:
                writer.writerow(
                    [
                        env["date"],
                        env["device"],
                        env["torch"],
                        env["triton"],
                        "median_ms",
                        op,
                        shape,
                        impl,
                        "" if ms is None else f"{ms:.4f}",
                        "" if peak is None else f"{peak / 2**20:.1f}",
                        "",
                    ]
                )


@contextmanager
def _null():
    yield


def _loss_step(fn, feats, scale):
    """Forward + backward of ``fn(image, text, scale)`` with fresh gradients."""

    def run():
        feats[0].grad = feats[1].grad = None
        fn(feats[0], feats[1], scale).backward()

    return run


def dense_clip_loss():
    """open_clip's ClipLoss when importable, else the same computation written out."""
    import torch
    import torch.nn.functional as F

    try:
        from open_clip.loss import ClipLoss

        loss = ClipLoss()
        return (lambda image, text, scale: loss(image, text, scale)), "open_clip ClipLoss"
    except Exception:
        pass

    def clip_loss(image, text, scale):  # ClipLoss.get_logits + symmetric cross-entropy, single process
        logits_per_image = scale * image @ text.T
        logits_per_text = scale * text @ image.T
        labels = torch.arange(image.shape[0], device=image.device)
        return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2

    return clip_loss, "dense (ClipLoss math)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, Triton interpreter, tiny shapes")
    parser.add_argument("--csv", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "gpu_check.csv")
    parser.add_argument("--skip-large", action="store_true", help="skip the B=65536 / 262144 runs")
    parser.add_argument("--seed", type=int, default=None, help="default: fresh from os.urandom")
    parser.add_argument(
        "--budget", type=float, default=420.0, help="seconds; torch.compile is skipped past 60%% of it"
    )
    args = parser.parse_args(argv)

    bootstrap(args.dry_run)
    import torch
    import triton

    if torch.cuda.is_available() and not args.dry_run:
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(device)
    elif args.dry_run:
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (Triton interpreter)"
    else:
        print("no CUDA device: run with --dry-run to exercise the script on CPU", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 references in full fp32
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    env = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "device": name,
        "torch": torch.__version__,
        "triton": triton.__version__,
    }
    print(
        f"device {name}; torch {env['torch']}; triton {env['triton']}; python {sys.version.split()[0]}; "
        f"seed {seed}",
        flush=True,
    )
    check = Check(device, args.dry_run, seed, args.budget)
    check.run_correctness()
    if args.skip_large:
        check.log("large-scale runs skipped (--skip-large)")
    else:
        check.run_large()
    check.run_speed()
    check.write_csv(args.csv, env)
    print(check.table(), flush=True)
    return 0 if all(row[4] == "ok" for row in check.correct) else 1


if __name__ == "__main__":
    sys.exit(main())
