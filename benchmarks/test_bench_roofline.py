"""Roofline and reference-ratio benchmarks, measured in one run (CPU, fp32, one thread, flush-to-zero).

    pytest benchmarks/test_bench_roofline.py --benchmark-only -s

Each case times forward + backward of a loss path interleaved with its reference, and reports the
median time, the achieved GFLOP/s (matrix-product FLOPs of the step / time), the share of a float32
matmul measured in the same run (``roofline``), and the time ratio to the reference (``ref_ratio``,
below 1 = faster). Rows go to ``benchmarks/results/roofline.csv``.

- STA fused vs a ten-line vectorised STA, at MGCA's per-GPU shapes (B=72, L=111, P=196, D=128);
- dense SIA (eliminate, with S) vs plain InfoNCE at B=4096, D=128; CLIP and ConVIRT vs their
  formulas written plainly at the same shape; SISTA vs plain SIA + plain STA at the STA shapes;
- our MGCA vs the official loss code (restated below) at the STA shapes, K=500 prototypes;
- our GLoRIA vs the official loss code (restated below): 97 word slots of mean length ~54, 19x19
  regions, D=768 as the official per-GPU shapes, but B=16 (not 48) to keep the run short.

The official code is restated in plain PyTorch, loops included: GLoRIA ``gloria/loss/gloria_loss.py``
(``local_loss`` with ``attention_fn`` and ``cosine_similarity``, one text at a time against every
image, and ``global_loss``); MGCA the loss half of ``MGCA.forward`` and ``MGCA.sinkhorn`` (per-sample
quantile loops, flattened cross-entropy, ``log(softmax)``). Layouts are ours (batch-first, regions
flattened); the arithmetic is theirs. Each case first checks that both sides give equal values.
Random softmax inputs produce denormals that slow matrix products 5-12x, hence flush-to-zero. Freed
buffers are reused (``_kernel_bench.reuse_freed_memory``): with glibc's adaptive thresholds the page
faults of a step, and the reference's time with them, depend on what ran before in the process.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _kernel_bench import (
    ROOFLINE_ROWS,
    append_row,
    environment,
    interleaved_medians,
    matmul_gflops,
    reuse_freed_memory,
)
from torch import Tensor

from sista_kit.baselines import ConVIRTLoss, GLoRIALoss, MGCALoss
from sista_kit.losses import SISTALoss
from sista_kit.losses.functional import fn_aware_infonce, sparse_token_align_loss

CSV_NAME = "roofline.csv"
CPU = torch.device("cpu")


# --------------------------------------------------------------------------------------------------
# the official loss code, restated
# --------------------------------------------------------------------------------------------------
def _cosine(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    w12 = torch.sum(x1 * x2, dim)
    w1, w2 = torch.norm(x1, 2, dim), torch.norm(x2, 2, dim)
    return (w12 / (w1 * w2).clamp(min=eps)).squeeze()


def _attention(query: Tensor, context: Tensor, gamma1: float) -> Tensor:
    """query (B, D, T) words, context (B, D, P) regions -> weighted context (B, D, T)."""
    batch, query_len, source_len = query.size(0), query.size(2), context.size(2)
    attn = torch.bmm(context.transpose(1, 2).contiguous(), query)  # (B, P, T)
    attn = torch.softmax(attn.view(batch * source_len, query_len), dim=-1)
    attn = attn.view(batch, source_len, query_len).transpose(1, 2).contiguous()
    attn = torch.softmax(attn.view(batch * query_len, source_len) * gamma1, dim=-1)
    attn = attn.view(batch, query_len, source_len)
    return torch.bmm(context, attn.transpose(1, 2).contiguous())


def gloria_official(
    img_g: Tensor, txt_g: Tensor, regions: Tensor, words: Tensor, lengths: list[int],
    temp1: float = 4.0, temp2: float = 5.0, temp3: float = 10.0,
) -> Tensor:  # fmt: skip
    """Total GLoRIA loss; ``regions`` (B, P, D), ``words`` (B, L, D) with text i using slots < lengths[i]."""
    batch = regions.shape[0]
    labels = torch.arange(batch)
    context = regions.transpose(1, 2)  # (B, D, P), the official layout
    similarities = []
    for i in range(batch):
        word = words[i, : lengths[i]].t().unsqueeze(0).repeat(batch, 1, 1)  # (B, D, T)
        wei_context = _attention(word, context, temp1)
        word = word.transpose(1, 2).contiguous().view(batch * lengths[i], -1)
        wei_context = wei_context.transpose(1, 2).contiguous().view(batch * lengths[i], -1)
        row_sim = _cosine(word, wei_context).view(batch, lengths[i])
        row_sim = torch.log(row_sim.mul_(temp2).exp_().sum(dim=1, keepdim=True))
        similarities.append(row_sim)
    local = torch.cat(similarities, 1) * temp3
    local_loss = F.cross_entropy(local, labels) + F.cross_entropy(local.t(), labels)
    g = (
        torch.mm(img_g, txt_g.t())
        / torch.mm(img_g.norm(dim=1, keepdim=True), txt_g.norm(dim=1, keepdim=True).t()).clamp(min=1e-8)
        * temp3
    )
    return local_loss + F.cross_entropy(g, labels) + F.cross_entropy(g.t(), labels)


@torch.no_grad()
def _sinkhorn(out: Tensor, epsilon: float = 0.05, iterations: int = 3) -> Tensor:
    q = torch.exp(out / epsilon).t()
    q /= torch.sum(q)
    k, b = q.shape
    r, c = torch.ones(k) / k, torch.ones(b) / b
    for _ in range(iterations):
        u = torch.sum(q, dim=1)
        q *= (r / u).unsqueeze(1)
        q *= (c / torch.sum(q, dim=0)).unsqueeze(0)
    return (q / torch.sum(q, dim=0, keepdim=True)).t().float()


def _weighted_ce(sim: Tensor, weights: Tensor, batch: int) -> Tensor:
    n = sim.size(1)
    targets = torch.arange(n).repeat(batch)
    rows = F.cross_entropy(sim.reshape(batch * n, n), targets, reduction="none")
    cols = F.cross_entropy(sim.transpose(1, 2).reshape(batch * n, n), targets, reduction="none")
    return (torch.sum(rows * weights.view(-1)) / batch + torch.sum(cols * weights.view(-1)) / batch) / 2


def mgca_official(
    img_q: Tensor, rep_q: Tensor, patch_q: Tensor, word_q: Tensor, word_mask: Tensor,
    word_attn: Tensor, img_attn: Tensor, prototypes: Tensor,
) -> Tensor:  # fmt: skip
    """Total MGCA loss (ViT branch, bidirectional, weights 1, 1, 1); ``img_attn`` (B, P)."""
    bz = img_q.size(0)
    img, rep = F.normalize(img_q, dim=-1), F.normalize(rep_q, dim=-1)
    patch, word = F.normalize(patch_q, dim=-1), F.normalize(word_q, dim=-1)
    labels = torch.arange(bz)
    scores = img.mm(rep.t()) / 0.07
    loss_ita = F.cross_entropy(scores, labels) + F.cross_entropy(scores.t(), labels)

    atten_scores = F.softmax(torch.bmm(word, patch.permute(0, 2, 1)) / 0.1, dim=-1)
    word_out = F.normalize(torch.bmm(atten_scores, patch), dim=-1)
    with torch.no_grad():
        weights = word_attn.detach().clone()
        rows = []
        for i in range(bz):
            w = weights[i]
            nonzero = w.nonzero().squeeze()
            low, high = torch.quantile(w[nonzero], 0.1), torch.quantile(w[nonzero], 0.9)
            w[nonzero] = w[nonzero].clip(low, high)
            rows.append(w.clone())
        word_weights = torch.stack(rows)
    word_weights /= word_weights.sum(dim=1, keepdims=True)
    loss_word = _weighted_ce(torch.bmm(word, word_out.permute(0, 2, 1)) / 0.1, word_weights, bz)

    atten_sim = torch.bmm(patch, word.permute(0, 2, 1))
    atten_sim[(~word_mask).unsqueeze(1).repeat(1, patch.size(1), 1)] = float("-inf")
    patch_out = torch.bmm(F.softmax(atten_sim / 0.1, dim=-1), word)
    with torch.no_grad():
        rows = []
        for i in range(bz):
            w = img_attn[i].clone()
            rows.append(w.clip(torch.quantile(w, 0.1), torch.quantile(w, 0.9)))
        patch_weights = torch.stack(rows)
        patch_weights /= patch_weights.sum(dim=1, keepdims=True)
    loss_patch = _weighted_ce(torch.bmm(patch, patch_out.permute(0, 2, 1)) / 0.1, patch_weights, bz)

    img_proto, rep_proto = img @ prototypes.t(), rep @ prototypes.t()
    img_code, rep_code = _sinkhorn(img_proto), _sinkhorn(rep_proto)
    img_prob, rep_prob = F.softmax(img_proto / 0.2, dim=1), F.softmax(rep_proto / 0.2, dim=1)
    loss_i2t = -torch.mean(torch.sum(img_code * torch.log(rep_prob), dim=1))
    loss_t2i = -torch.mean(torch.sum(rep_code * torch.log(img_prob), dim=1))
    return loss_ita + loss_word + loss_patch + (loss_i2t + loss_t2i) / 2


# --------------------------------------------------------------------------------------------------
# plain references of our own losses
# --------------------------------------------------------------------------------------------------
def sta_plain(image: Tensor, text: Tensor, mask: Tensor, tau: float = 0.07) -> Tensor:
    """STA in ten vectorised lines (threshold 1/P)."""
    v, w = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    s = w @ v.transpose(1, 2)
    lo, hi = s.amin(-1, keepdim=True), s.amax(-1, keepdim=True)
    n = (s - lo) / (hi - lo + 1e-8)
    a = n * (n >= 1.0 / s.shape[-1])
    total = a.sum(-1, keepdim=True)
    a = torch.where(total > 0, a / total.clamp_min(1e-30), 1.0 / s.shape[-1]) * mask[..., None]
    z = (w @ F.normalize(a @ v, dim=-1).transpose(1, 2)) / tau
    z = z.masked_fill(~(mask[:, None, :] & mask[:, :, None]), -1e30)
    ce = (torch.logsumexp(z, -1) + torch.logsumexp(z, -2)) / 2 - z.diagonal(dim1=1, dim2=2)
    return (ce * mask).sum() / mask.sum()


def sia_plain(image: Tensor, text: Tensor, scale: float, sim: Tensor, threshold: float = 0.9) -> Tensor:
    """SIA (eliminate) written per direction: identity, mask and masked logits built for each."""
    logits = scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    labels = torch.arange(logits.shape[0])
    eye = torch.eye(logits.shape[0], dtype=torch.bool)
    i2t = F.cross_entropy(logits.masked_fill((sim >= threshold) & ~eye, -1e30), labels)
    t2i = F.cross_entropy(logits.T.masked_fill((sim.T >= threshold) & ~eye, -1e30), labels)
    return 0.5 * (i2t + t2i)


def infonce_plain(image: Tensor, text: Tensor, scale: float) -> Tensor:
    """CLIP's symmetric InfoNCE."""
    logits = scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    labels = torch.arange(logits.shape[0])
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


# --------------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------------
def _leaves(*tensors: Tensor) -> list[Tensor]:
    return [t.clone().requires_grad_() for t in tensors]


def _step(fn, leaves: list[Tensor]):
    def run() -> Tensor:
        for t in leaves:
            t.grad = None
        loss = fn(*leaves)
        loss.backward()
        return loss.detach()

    return run


def _sta_case():
    b, l, p, d = 72, 111, 196, 128
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(b, p, d, generator=g), torch.randn(b, l, d, generator=g)
    mask = torch.arange(l)[None] < torch.randint(l // 4, l + 1, (b, 1), generator=g)
    flops = 12 * b * l * p * d + 6 * b * l * l * d
    ours = _step(lambda v, w: sparse_token_align_loss(v, w, mask), _leaves(image, text))
    ref = _step(lambda v, w: sta_plain(v, w, mask), _leaves(image, text))
    return f"B={b},L={l},P={p},D={d}", flops, ours, ref, "ten-line STA", 15


def _sia_case():
    b, d = 4096, 128
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    z = F.normalize(torch.randn(b, 16, generator=g), dim=-1)
    z[1::9] = z[0]
    sim = (z @ z.T).clamp_(-1, 1)
    flops = 6 * b * b * d
    ours = _step(lambda v, t: fn_aware_infonce(v, t, 14.3, sim), _leaves(image, text))
    ref = _step(lambda v, t: infonce_plain(v, t, 14.3), _leaves(image, text))
    check = _step(lambda v, t: sia_plain(v, t, 14.3, sim), _leaves(image, text))
    return f"B={b},D={d}", flops, ours, ref, "plain InfoNCE", 7, check


def _clip_case():
    b, d = 4096, 128
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    ours = _step(lambda v, t: fn_aware_infonce(v, t, 14.3), _leaves(image, text))
    ref = _step(lambda v, t: infonce_plain(v, t, 14.3), _leaves(image, text))
    return f"B={b},D={d}", 6 * b * b * d, ours, ref, "plain InfoNCE", 7


def convirt_plain(image: Tensor, text: Tensor, lambda_: float = 0.75, tau: float = 0.1) -> Tensor:
    """ConVIRT's formula in three lines."""
    logits = F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T / tau
    labels = torch.arange(logits.shape[0])
    return lambda_ * F.cross_entropy(logits, labels) + (1 - lambda_) * F.cross_entropy(logits.T, labels)


def _convirt_case():
    b, d = 4096, 128
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    loss_fn = ConVIRTLoss()
    ours = _step(lambda v, t: loss_fn(image_features=v, text_features=t), _leaves(image, text))
    ref = _step(convirt_plain, _leaves(image, text))
    return f"B={b},D={d}", 6 * b * b * d, ours, ref, "plain ConVIRT", 7


def _sista_case():
    b, l, p, d = 72, 111, 196, 128
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(b, p, d, generator=g), torch.randn(b, l, d, generator=g)
    img_g, txt_g = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    mask = torch.arange(l)[None] < torch.randint(l // 4, l + 1, (b, 1), generator=g)
    labels = (torch.rand(b, 7, generator=g) < 0.15).float()
    loss_fn = SISTALoss(similarity="labels", backend="torch")
    z = torch.cat([labels, (labels.sum(1, keepdim=True) == 0).float()], 1)
    sim = (F.normalize(z, dim=-1) @ F.normalize(z, dim=-1).T).clamp_(-1, 1)

    def ours_fn(v, t, patches, words):
        return loss_fn(image_features=v, text_features=t, image_tokens=patches, text_tokens=words,
                       text_mask=mask, logit_scale=14.3, report_labels=labels)  # fmt: skip

    def plain_fn(v, t, patches, words):
        return sia_plain(v, t, 14.3, sim) + sta_plain(patches, words, mask)

    leaves = [img_g, txt_g, image, text]
    flops = 12 * b * l * p * d + 6 * b * l * l * d + 6 * b * b * d
    return (
        f"B={b},L={l},P={p},D={d}",
        flops,
        _step(ours_fn, _leaves(*leaves)),
        _step(plain_fn, _leaves(*leaves)),
        "plain SIA + STA",
        7,
    )


def _mgca_case():
    b, l, p, d, k = 72, 111, 196, 128, 500
    g = torch.Generator().manual_seed(0)
    mask = torch.arange(l)[None] < torch.randint(l // 4, l + 1, (b, 1), generator=g)
    x = [torch.randn(b, d, generator=g), torch.randn(b, d, generator=g), torch.randn(b, p, d, generator=g),
         torch.randn(b, l, d, generator=g)]  # fmt: skip
    word_attn = torch.rand(b, l, generator=g) * mask
    img_attn = torch.rand(b, p, generator=g)
    loss_fn = MGCALoss(embed_dim=d, num_prototypes=k)
    loss_fn.set_epoch(1)
    with torch.no_grad():
        loss_fn.prototypes.copy_(F.normalize(loss_fn.prototypes, dim=1))
    protos = loss_fn.prototypes.detach().clone()

    def ours_fn(img, rep, patch, word):
        return loss_fn(image_features=img, text_features=rep, image_tokens=patch, text_tokens=word,
                       text_mask=mask, text_attention=word_attn, image_attention=img_attn)  # fmt: skip

    def official_fn(img, rep, patch, word, w):
        return mgca_official(img, rep, patch, word, mask, word_attn, img_attn, w)

    loss_fn.prototypes.requires_grad_(True)
    ours = _step(lambda *a: ours_fn(*a[:4]), [*_leaves(*x), loss_fn.prototypes])
    ref = _step(official_fn, [*_leaves(*x), protos.requires_grad_()])
    flops = 3 * 2 * b * (4 * l * p * d + p * p * d + l * l * d) + 3 * 2 * b * (b + 2 * k) * d
    return f"B={b},L={l},P={p},D={d},K={k}", flops, ours, ref, "official MGCA", 15


def _gloria_case():
    b, l, p, d = 16, 97, 361, 768
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(12, l + 1, (b,), generator=g).tolist()
    mask = torch.arange(l)[None] < torch.tensor(lengths)[:, None]
    x = [torch.randn(b, d, generator=g), torch.randn(b, d, generator=g), torch.randn(b, p, d, generator=g),
         torch.randn(b, l, d, generator=g)]  # fmt: skip
    loss_fn = GLoRIALoss(include_cls=False)

    def ours_fn(img, txt, regions, words):
        return loss_fn(
            image_features=img, text_features=txt, image_tokens=regions, text_tokens=words, text_mask=mask
        )

    ours = _step(ours_fn, _leaves(*x))
    ref = _step(lambda *a: gloria_official(*a, lengths), _leaves(*x))
    flops = 3 * 2 * 2 * b * p * b * sum(lengths) / b * d
    return f"B={b},L={l}(mean {sum(lengths) / b:.0f}),P={p},D={d}", flops, ours, ref, "official GLoRIA", 5


CASES = {
    "sta": _sta_case,
    "sia": _sia_case,
    "clip": _clip_case,
    "sista": _sista_case,
    "convirt": _convirt_case,
    "mgca": _mgca_case,
    "gloria": _gloria_case,
}


@pytest.fixture(scope="module")
def machine():
    """One thread, flush-to-zero, freed memory reused, and the matmul roofline of this run."""
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    with reuse_freed_memory():
        yield {"gflops": matmul_gflops()}
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


@pytest.mark.parametrize("name", list(CASES))
def test_bench_roofline(benchmark, machine, name: str) -> None:
    shape, flops, ours, ref, ref_name, rounds, *check = CASES[name]()
    same = (check or [ref])[0]  # equal outputs before timing (SIA: against SIA written plainly)
    torch.testing.assert_close(ours(), same(), rtol=1e-4, atol=1e-4)
    medians = interleaved_medians({"ours": ours, "ref": ref}, rounds)
    benchmark.group = "roofline"
    benchmark.pedantic(ours, rounds=1, iterations=1)
    peak = machine["gflops"]
    rows = {"ours": medians["ours"], ref_name: medians["ref"]}
    for impl, seconds in rows.items():
        achieved = flops / seconds / 1e9
        ratio = seconds / medians["ref"]
        append_row(
            CSV_NAME,
            {**environment(CPU), "op": name, "regime": "roofline", "shape": shape, "dtype": "float32",
             "impl": impl, "median_ms": f"{seconds * 1e3:.1f}", "gflops": f"{achieved:.1f}",
             "roofline": f"{achieved / peak:.2f}", "ref_ratio": f"{ratio:.2f}",
             "note": f"matmul {peak:.1f} GFLOP/s; {flops / 1e9:.2f} GFLOP per step; freed memory reused"},
        )  # fmt: skip
        benchmark.extra_info[impl] = {"ms": seconds * 1e3, "gflops": achieved, "roofline": achieved / peak}
    ratio = medians["ours"] / medians["ref"]
    benchmark.extra_info.update(ref_ratio=ratio, matmul_gflops=peak)
    floor_ms = flops / peak / 1e6
    ROOFLINE_ROWS.append(
        {"op": name, "shape": shape, "ours_ms": f"{medians['ours'] * 1e3:.1f}",
         "gflops": f"{flops / medians['ours'] / 1e9:.1f}",
         "roofline": f"{flops / medians['ours'] / 1e9 / peak:.2f}",
         "x_floor": f"{medians['ours'] * 1e3 / floor_ms:.2f}", "reference": ref_name,
         "ref_ms": f"{medians['ref'] * 1e3:.1f}", "ref_ratio": f"{ratio:.2f}"}
    )  # fmt: skip
    print(
        f"\n{name} {shape}: ours {medians['ours'] * 1e3:.1f} ms "
        f"({flops / medians['ours'] / 1e9:.1f} GFLOP/s, "
        f"{floor_ms:.1f} ms floor at {peak:.1f} GFLOP/s = {medians['ours'] * 1e3 / floor_ms:.2f}x floor), "
        f"{ref_name} {medians['ref'] * 1e3:.1f} ms; ours / ref = {ratio:.2f}"
    )
