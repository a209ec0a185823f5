"""Adapters from the reference-case files (official GLoRIA / MGCA outputs) to our functional API.

A case file is an ``.npz`` written in the layout of ``tests/fixtures/baselines/README.md``: inputs,
hyperparameters (0-d arrays) and the official outputs (loss terms, intermediates, gradients of the
total). The adapters only change the layout (argument order, key names, heads averaging, the
prototype row normalisation done in place by the official code); the math is ours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .gloria import gloria_loss
from .mgca import mgca_loss

GLORIA_INPUTS = frozenset(
    {"img_emb_l", "words_emb", "cap_lens", "word_mask", "img_emb_g", "text_emb_g", "grid_hw", "temp1",
     "temp2", "temp3", "local_loss_weight", "global_loss_weight", "eps", "seed"}
)  # fmt: skip
MGCA_INPUTS = frozenset(
    {"img_emb_q", "report_emb_q", "patch_emb_q", "word_emb_q", "word_mask", "word_attn_q",
     "img_attn_cls_row", "prototype_weight", "softmax_temperature", "local_temperature",
     "proto_temperature", "epsilon", "sinkhorn_iterations", "bidirectional", "lambda_1", "lambda_2",
     "lambda_3", "quantile_low", "quantile_high", "seed"}
)  # fmt: skip


def _leaf(arrays: Mapping[str, np.ndarray], key: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(arrays[key], dtype=np.float64)).requires_grad_(True)


def _scalar(arrays: Mapping[str, np.ndarray], key: str) -> float:
    return float(np.asarray(arrays[key]))


def run_gloria_case(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Compute every official GLoRIA output key of a case with :func:`gloria_loss` (float64)."""
    img_l, words = _leaf(arrays, "img_emb_l"), _leaf(arrays, "words_emb")
    img_g, txt_g = _leaf(arrays, "img_emb_g"), _leaf(arrays, "text_emb_g")
    mask = torch.from_numpy(np.asarray(arrays["word_mask"])).bool()
    cap_lens = torch.from_numpy(np.asarray(arrays["cap_lens"])).long()
    if not torch.equal(mask, torch.arange(mask.shape[1])[None, :] < cap_lens[:, None]):
        raise ValueError("word_mask disagrees with cap_lens (it must be arange(L) < cap_lens[b])")
    out = gloria_loss(
        img_g,
        txt_g,
        img_l,
        words,
        mask,
        temp1=_scalar(arrays, "temp1"),
        temp2=_scalar(arrays, "temp2"),
        temp3=_scalar(arrays, "temp3"),
        local_weight=_scalar(arrays, "local_loss_weight"),
        global_weight=_scalar(arrays, "global_loss_weight"),
        eps=_scalar(arrays, "eps"),
        return_logits=True,
        return_attention=True,
    )
    out["loss"].backward()
    got = {
        "global_loss0": out["global_i2t"],
        "global_loss1": out["global_t2i"],
        "local_loss0": out["local_i2t"],
        "local_loss1": out["local_t2i"],
        "loss_total": out["loss"],
        "global_logits": out["global_logits"],
        "local_logits": out["local_logits"],
        "attn_maps": out["attn_maps"],
        "grad_img_emb_l": img_l.grad,
        "grad_words_emb": words.grad,
        "grad_img_emb_g": img_g.grad,
        "grad_text_emb_g": txt_g.grad,
    }
    return {k: v.detach().double().numpy() for k, v in got.items()}


def run_mgca_case(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Compute every official MGCA output key of a case with :func:`mgca_loss` (float64)."""
    img, rep = _leaf(arrays, "img_emb_q"), _leaf(arrays, "report_emb_q")
    patch, word = _leaf(arrays, "patch_emb_q"), _leaf(arrays, "word_emb_q")
    # Official: the prototype layer weight is row-normalised in place, then used as the leaf.
    raw = torch.from_numpy(np.asarray(arrays["prototype_weight"], dtype=np.float64))
    protos = F.normalize(raw, dim=1).requires_grad_(True)
    mask = torch.from_numpy(np.asarray(arrays["word_mask"])).bool()
    word_attn = torch.from_numpy(np.asarray(arrays["word_attn_q"], dtype=np.float64))
    # Official: attention_map[:, :, 0, 1:].mean(dim=1) (row 0 = ViT [CLS] query; key 0 = [CLS]).
    patch_attn = torch.from_numpy(np.asarray(arrays["img_attn_cls_row"], dtype=np.float64))[:, :, 1:].mean(
        dim=1
    )
    out = mgca_loss(
        img,
        rep,
        patch,
        word,
        mask,
        word_attn,
        patch_attn,
        protos,
        softmax_temperature=_scalar(arrays, "softmax_temperature"),
        local_temperature=_scalar(arrays, "local_temperature"),
        proto_temperature=_scalar(arrays, "proto_temperature"),
        epsilon=_scalar(arrays, "epsilon"),
        sinkhorn_iterations=int(np.asarray(arrays["sinkhorn_iterations"])),
        lambda_1=_scalar(arrays, "lambda_1"),
        lambda_2=_scalar(arrays, "lambda_2"),
        lambda_3=_scalar(arrays, "lambda_3"),
        quantile_low=_scalar(arrays, "quantile_low"),
        quantile_high=_scalar(arrays, "quantile_high"),
        bidirectional=bool(np.asarray(arrays["bidirectional"])),
        return_intermediates=True,
    )
    out["loss"].backward()
    names = {
        "loss_ita": "ita", "loss_ita_i2t": "ita_i2t", "loss_ita_t2i": "ita_t2i",
        "loss_word_1": "word_rows", "loss_word_2": "word_cols", "loss_word": "word",
        "loss_patch_1": "patch_rows", "loss_patch_2": "patch_cols", "loss_patch": "patch",
        "loss_local": "local", "loss_i2t_proto": "proto_i2t", "loss_t2i_proto": "proto_t2i",
        "loss_proto": "proto", "loss_total": "loss", "ita_scores": "ita_logits",
        "word_atten_weights": "word_weights", "patch_atten_weights": "patch_weights",
        "img_code": "image_codes", "report_code": "report_codes",
    }  # fmt: skip
    got = {ref: out[ours] for ref, ours in names.items() if ours in out}
    got.update(
        grad_img_emb_q=img.grad,
        grad_report_emb_q=rep.grad,
        grad_patch_emb_q=patch.grad,
        grad_word_emb_q=word.grad,
        grad_prototype_weight=protos.grad,
    )
    return {k: v.detach().double().numpy() for k, v in got.items()}


CASE_KINDS: dict[str, tuple[frozenset[str], Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]]] = {
    "gloria": (GLORIA_INPUTS, run_gloria_case),
    "mgca": (MGCA_INPUTS, run_mgca_case),
}


def case_kind(path: str | Path) -> str:
    """``gloria`` or ``mgca`` from the file name (``gloria_*.npz`` / ``mgca_*.npz``)."""
    name = Path(path).name.lower()
    for kind in CASE_KINDS:
        if name.startswith(kind + "_") or name.startswith(kind + "."):
            return kind
    raise ValueError(
        f"{path}: cannot tell the method from the file name (expected gloria_*.npz or mgca_*.npz)"
    )


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| / max |ref| (absolute when ref is all zeros); inf for a shape mismatch or a
    non-finite value."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape or not np.all(np.isfinite(ours)):
        return float("inf")
    diff = float(np.max(np.abs(ours - ref), initial=0.0))
    scale = float(np.max(np.abs(ref), initial=0.0))
    return diff / scale if scale > 0 else diff


def compare_case(path: str | Path) -> list[tuple[str, tuple[int, ...], float, float]]:
    """Run our implementation on one case file; return (key, shape, max |ref|, rel. error) for every
    stored output. Raises for a missing file or keys the adapter does not know."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference case not found: {path}")
    inputs, run = CASE_KINDS[case_kind(path)]
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    missing = sorted(k for k in inputs - {"seed"} if k not in arrays)
    if missing:
        raise KeyError(f"{path}: missing input keys {missing}")
    got = run(arrays)
    expected = sorted(k for k in arrays if k not in inputs)
    unknown = [k for k in expected if k not in got]
    if unknown:
        raise KeyError(f"{path}: stored keys this check does not know how to compute: {unknown}")
    if not expected:
        raise KeyError(f"{path}: no output keys to compare")
    rows = []
    for key in expected:
        ref = np.asarray(arrays[key], dtype=np.float64)
        rows.append(
            (key, tuple(ref.shape), float(np.max(np.abs(ref), initial=0.0)), relative_error(got[key], ref))
        )
    return rows
