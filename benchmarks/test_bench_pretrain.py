"""Pretraining step throughput of the tiny config on CPU (1 thread), for every registered loss.

One step = model forward on a batch of image-report pairs, loss, backward and AdamW step: what
open_clip's loop does per batch. The batch is real embedded data (128 px images, reports tokenized by
a tokenizer trained on them), so word counts are realistic.

    pytest benchmarks/test_bench_pretrain.py --benchmark-only     # pytest-benchmark table
    python benchmarks/test_bench_pretrain.py [--batch 16] [--steps 5]   # pairs/s and SISTA / CLIP

Goal: a SISTA step costs at most 1.15x a CLIP step (the losses are cheap next to the encoders).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from functools import cache

import pytest
import torch

torch.set_num_threads(1)

BATCH = 16
SISTA_OVER_CLIP_GOAL = 1.15


@cache
def _batch(batch_size: int = BATCH, image_size: int = 128):
    from sista_kit.data.datasets import collate_pretrain, pretrain_item
    from sista_kit.data.synthetic import generate
    from sista_kit.data.tokenizer import train_tokenizer
    from sista_kit.data.transforms import ImageTransform
    from sista_kit.models import TextBatch

    samples = generate(batch_size, seed=0, image_size=image_size)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer([s.report for s in samples] * 4, tmp, vocab_size=400)
    transform, pad_id = ImageTransform(), int(tokenizer.pad_token_id)
    # items padded to 128 columns; collate trims them back to the longest report
    batch = collate_pretrain([pretrain_item(s, tokenizer, 128, transform, pad_id) for s in samples])
    return batch["image"], TextBatch.from_batch(batch, with_labels=True), len(tokenizer)


def _setup(
    loss_name: str,
    batch_size: int = BATCH,
    image_size: int = 128,
    phases: dict | None = None,
    model_name: str = "sista-tiny",
    precision: str = "fp32",
    attention: str = "training",
):
    """One timed training step (``precision``: fp32 or amp_bf16; ``attention``: the kernel training
    picks for it, or PyTorch's ``default`` choice)."""
    from sista_kit.models import build_model
    from sista_kit.models.configs import model_config
    from sista_kit.train.pretrain import attention_backend, build_training_loss

    images, texts, vocab = _batch(batch_size, image_size)
    cfg = model_config(model_name)
    cfg["text_cfg"]["hf_config"]["vocab_size"] = vocab
    cfg["vision_cfg"]["image_size"] = image_size
    torch.manual_seed(0)
    model = build_model(cfg).train()
    kwargs = {"similarity": "labels"} if loss_name in ("sista", "sia") else {}
    loss = build_training_loss(loss_name, kwargs, int(cfg["embed_dim"]), [])
    params = list(model.parameters()) + list(loss.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step() -> float:
        clock = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        training = attention == "training"
        with attention_backend(torch.device("cpu"), precision) if training else nullcontext():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "amp_bf16"):
                out = model(images, texts)
                towers = time.perf_counter()
                terms = loss(**out, output_dict=True)
                total = sum(terms.values())
            loss_done = time.perf_counter()
            total.backward()
        backward = time.perf_counter()
        optimizer.step()
        if phases is not None:
            end = time.perf_counter()
            for name, seconds in (
                ("towers forward", towers - clock),
                ("loss forward", loss_done - towers),
                ("backward (towers + loss)", backward - loss_done),
                ("optimizer", end - backward),
            ):
                phases.setdefault(name, []).append(seconds)  # fmt: skip
        return float(total.detach())

    return step


def seconds_per_step(loss_name: str, steps: int = 5, warmup: int = 1, batch_size: int = BATCH) -> float:
    """Median wall time of one pretraining step with ``loss_name``."""
    step = _setup(loss_name, batch_size)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _losses() -> list[str]:
    from sista_kit.losses import available_losses

    return available_losses()


@pytest.mark.parametrize("loss_name", _losses())
def test_bench_pretrain_step(benchmark, loss_name):
    step = _setup(loss_name)
    step()  # warm-up
    benchmark.extra_info["pairs_per_step"] = BATCH
    value = benchmark.pedantic(step, rounds=5, iterations=1)
    assert value == value  # not NaN
    benchmark.extra_info["pairs_per_s"] = BATCH / benchmark.stats.stats.median


PROFILE_BATCH, PROFILE_IMAGE = 64, 64  # the default benchmark profile: batch 64, 64 px


def profile_step(
    loss_name: str = "sista",
    steps: int = 3,
    model_name: str = "sista-tiny",
    precision: str = "fp32",
    attention: str = "training",
) -> dict[str, float]:
    """Median ms per phase of a pretraining step (default-profile shapes), and the time to build
    (generate, tokenize, transform, collate) the batch once ("data")."""
    start = time.perf_counter()
    _batch(PROFILE_BATCH, PROFILE_IMAGE)
    data_ms = (time.perf_counter() - start) * 1e3
    phases: dict[str, list[float]] = {}
    step = _setup(loss_name, PROFILE_BATCH, PROFILE_IMAGE, phases, model_name, precision, attention)
    step()
    phases.clear()
    for _ in range(steps):
        step()
    out = {name: sorted(v)[len(v) // 2] * 1e3 for name, v in phases.items()}
    out["data (first batch: generate, train tokenizer, collate)"] = data_ms
    return out


@pytest.mark.parametrize("loss_name", ["clip", "sista"])
def test_bench_pretrain_profile(benchmark, loss_name):
    """Where a step's time goes: towers, loss, backward, optimizer (printed and in extra_info)."""
    phases = benchmark.pedantic(profile_step, args=(loss_name,), rounds=1, iterations=1)
    benchmark.extra_info.update({k: round(v, 1) for k, v in phases.items()})
    step_ms = sum(v for k, v in phases.items() if not k.startswith("data"))
    print(f"\n{loss_name} step {step_ms:.0f} ms: " + ", ".join(f"{k} {v:.0f} ms" for k, v in phases.items()))
    assert all(v > 0 for v in phases.values())


@pytest.mark.parametrize("attention", ["training", "default"])
@pytest.mark.parametrize("model_name", ["sista-tiny", "sista-mini", "sista-micro"])
def test_bench_pretrain_profile_bf16(benchmark, model_name, attention):
    """The benchmark profile's step: bf16 autocast, CLIP loss, with the attention kernel training uses
    (the math path) or PyTorch's default choice (CPU flash attention)."""
    phases = benchmark.pedantic(
        profile_step, args=("clip", 3, model_name, "amp_bf16", attention), rounds=1, iterations=1
    )
    benchmark.extra_info.update({k: round(v, 1) for k, v in phases.items()})
    step_ms = sum(v for k, v in phases.items() if not k.startswith("data"))
    print(f"\n{model_name} amp_bf16 clip, {attention} attention: step {step_ms:.0f} ms")
    assert step_ms > 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--steps", type=int, default=5)
    opts = parser.parse_args()
    results = {}
    for name in _losses():
        results[name] = seconds_per_step(name, opts.steps, batch_size=opts.batch)
        print(
            f"{name:8s} {results[name] * 1e3:8.1f} ms/step {opts.batch / results[name]:7.1f} pairs/s",
            flush=True,
        )
    ratio = results["sista"] / results["clip"]
    verdict = "meets" if ratio <= SISTA_OVER_CLIP_GOAL else "misses"
    print(f"SISTA / CLIP step time: {ratio:.3f}x ({verdict} the {SISTA_OVER_CLIP_GOAL}x goal)")


if __name__ == "__main__":
    main()
