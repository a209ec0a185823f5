"""Rendering of findings on top of the anatomy, with their ground-truth masks.

Each finding is rendered only on the studies that have it (row subsets), for one or both sides
(bilateral findings), entirely with tensor operations.
"""

from __future__ import annotations

import numpy as np
import torch

from .anatomy import Geometry, heart, lung_profile, lung_side, ramp, smooth_noise
from .findings import CLS, FindingArrays, K

_ZONE_Q = np.array([0.24, 0.50, 0.72], dtype=np.float32)  # upper / middle / lower, along the lung height


def enlarge_heart(g: Geometry, f: FindingArrays, rng: np.random.Generator) -> None:
    """Widen the cardiac silhouette of studies with cardiomegaly (in place, before rendering)."""
    k = CLS["cardiomegaly"]
    ctr = 1.32 + 0.10 * f.severity[:, k] + 0.06 * rng.random(len(f))
    ctr_t = torch.as_tensor(ctr.astype(np.float32), device=g.ctr.device).view(-1, 1, 1)
    sel = torch.as_tensor(f.present[:, k], device=g.ctr.device).view(-1, 1, 1)
    g.ctr = torch.where(sel, ctr_t, g.ctr)


def _sides(side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row duplication for bilateral findings: (row index into subset, sign) per rendered copy."""
    m = len(side)
    sgn = np.where(side == 1, 1.0, -1.0)  # right (0) and bilateral (2) first render the right side
    bil = np.flatnonzero(side == 2)
    return np.concatenate([np.arange(m), bil]), np.concatenate([sgn, np.ones(len(bil))]).astype(np.float32)


def render_findings(
    g: Geometry, anat: dict[str, torch.Tensor], f: FindingArrays, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add every finding's attenuation to ``anat['atten']`` (in place).

    Returns the masks (N, K, H, W) bool and the lucency map (N, H, W) (where lung markings vanish).
    """
    atten, u_all, v_all = anat["atten"], anat["u"], anat["v"]
    n, h, w = atten.shape
    dev = atten.device
    e = 2.5 / w
    masks = torch.zeros(n, K, h, w, dtype=torch.bool, device=dev)
    lucent = torch.zeros(n, h, w, device=dev)
    jit = rng.random((n, K, 4)).astype(np.float32)  # placement jitter per study and finding

    def t(a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float32), device=dev).view(-1, 1, 1)

    for k in range(K):
        rows = np.flatnonzero(f.present[:, k])
        if len(rows) == 0:
            continue
        if k == CLS["cardiomegaly"]:
            ri = torch.as_tensor(rows, device=dev)
            masks[rows, k] = heart(g.rows(ri), u_all[ri], v_all[ri]) > 0.5
            continue
        sub, sgn_np = _sides(f.side[rows, k])
        r = rows[sub]
        ri = torch.as_tensor(r, device=dev)
        gr = g.rows(ri)
        u, v, sgn = u_all[ri], v_all[ri], t(sgn_np)
        sev, size, j = t(f.severity[r, k]), t(f.size[r, k]), jit[r, k]
        ua, q, hwa, _ = lung_profile(gr, u, v, sgn)
        lung = lung_side(gr, u, v, sgn, e)
        yb = gr.yb(sgn)
        # Centre of the finding inside the lung at its zone, expressed in (ua, v).
        qc = t(_ZONE_Q[f.zone[r, k]] + 0.10 * (j[:, 0] - 0.5))
        y0 = gr.yt + qc * (yb - gr.yt)
        hw0 = (qc / 0.33).clamp(0, 1).sqrt() * (1 - 0.06 * qc) * gr.a
        x0 = gr.xc + t(0.8 * (j[:, 1] - 0.5)) * hw0
        name = next(nm for nm, i in CLS.items() if i == k)
        if name == "consolidation":
            rx, ry = gr.a * (0.28 + 0.35 * size), (yb - gr.yt) * (0.10 + 0.14 * size)
            tex = smooth_noise(rng, len(r), h, w, 10, dev).clamp(-1, 1)
            region = ramp(1 - ((ua - x0) / rx).square() - ((v - y0) / ry).square() - 0.35 * tex, 0.25) * lung
            delta = (0.16 + 0.06 * sev) * region * (0.85 + 0.15 * tex)
        elif name == "nodule":
            rad = 0.028 + 0.07 * size
            dist = ((ua - x0).square() + (v - y0).square()).sqrt()
            region = ramp(rad - dist, e)
            delta = (0.20 + 0.05 * sev) * region
        elif name == "effusion":
            pl = ((ua - gr.xc) / gr.a + 1).clamp(0, 2)  # 0 medial .. 2 lateral
            ys = gr.yt + (1 - (0.14 + 0.40 * size)) * (yb - gr.yt) + 0.06 - 0.12 * pl.square()  # meniscus
            lat = hwa - (ua - gr.xc).abs()
            region = ramp(torch.minimum(lat, yb + 0.03 - v), e) * ramp(v - ys, 0.06)
            # Fluid is as dense as the abdomen below: fill up to that level (meniscus, lost angle).
            delta = region * (0.62 + 0.03 * sev - atten[ri]).clamp(min=0)
        elif name == "pneumothorax":
            depth = gr.a * (0.12 + 0.30 * size)
            lat = hwa - (ua - gr.xc)  # distance from the lateral pleura
            upper = ramp(0.72 - q, 0.1)
            region = lung * ramp(depth - lat, e) * upper
            line = ramp(0.012 - (lat - depth).abs(), 0.008) * lung * upper
            delta = 0.12 * line - 0.06 * region
            lucent[ri] = torch.maximum(lucent[ri], region)  # never bilateral: rows are unique
        elif name == "atelectasis":
            th = t(0.7 * (j[:, 2] - 0.5))
            cos, sin = th.cos(), th.sin()
            nrm = -(ua - x0) * sin + (v - y0) * cos
            along = (ua - x0) * cos + (v - y0) * sin
            thick = 0.012 + 0.035 * size + e
            half_len = gr.a * (0.40 + 0.35 * size)
            region = ramp(thick - nrm.abs(), 2 * e) * ramp(half_len - along.abs(), 0.1) * lung
            delta = (0.12 + 0.04 * sev) * region
        else:  # edema: bilateral perihilar haze with indistinct markings
            haze = torch.exp(-((ua - 0.22) / (0.20 + 0.06 * sev)).square()) * torch.exp(
                -((v - 0.0) / 0.32).square()
            )
            region = haze * lung
            delta = (0.10 + 0.05 * sev) * region
        atten.index_add_(0, ri, delta)
        # Bilateral copies are merged back onto their study before thresholding.
        hard = region[: len(rows)].clone()
        if len(r) > len(rows):
            bil = torch.as_tensor(sub[len(rows) :], device=dev)
            hard[bil] = torch.maximum(hard[bil], region[len(rows) :])
        masks[rows, k] = hard > 0.5
    return masks, lucent
