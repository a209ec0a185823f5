"""Vectorised rendering of chest-radiograph-like images from per-study parameters.

Coordinates are normalised: x runs from -1 (image left = the patient's right) to +1, y from -1 (top)
to +1. Every structure is a soft region computed from broadcast (N, 1, W) / (N, H, 1) coordinate
tensors, so a whole batch is rendered with a few dozen tensor operations and no per-pixel loop.
Findings are rendered on the subset of studies that have them (see ``lesions.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def ramp(d: torch.Tensor, width: float) -> torch.Tensor:
    """Soft step: 0 for d <= -width/2, 1 for d >= width/2, linear between (an anti-aliased edge)."""
    return (d / width + 0.5).clamp_(0.0, 1.0)


@dataclass
class Geometry:
    """Per-study anatomy parameters, each a float tensor of shape (N, 1, 1)."""

    cx: torch.Tensor  # horizontal patient shift
    cy: torch.Tensor  # vertical patient shift
    scale: torch.Tensor  # overall size of the thorax in the field of view
    wf: torch.Tensor  # lung width factor
    hf: torch.Tensor  # lung height factor (inspiration)
    ctr: torch.Tensor  # heart width factor (1 = normal, > 1.25 = cardiomegaly)
    yt: torch.Tensor  # lung apex
    yb_r: torch.Tensor  # right costophrenic angle level
    yb_l: torch.Tensor  # left costophrenic angle level
    contrast: torch.Tensor
    brightness: torch.Tensor
    gamma: torch.Tensor
    noise: torch.Tensor
    rib_phase: torch.Tensor
    rib_period: torch.Tensor

    def rows(self, idx: torch.Tensor) -> Geometry:
        return Geometry(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    @property
    def xc(self) -> torch.Tensor:
        """Distance of each lung's centre from the midline."""
        return 0.44 * self.wf

    @property
    def a(self) -> torch.Tensor:
        """Half width of a lung at its widest."""
        return 0.36 * self.wf

    def yb(self, sgn: torch.Tensor) -> torch.Tensor:
        """Costophrenic level of the side ``sgn`` (-1 = patient's right / image left, +1 = left)."""
        return torch.where(sgn < 0, self.yb_r, self.yb_l)


def sample_geometry(rng: np.random.Generator, n: int, device: torch.device | str = "cpu") -> Geometry:
    """Draw patient variation: position, size, inspiration, heart size, exposure and noise."""

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float32), device=device).view(n, 1, 1)

    u = rng.random((n, 14))
    hf = 0.92 + 0.16 * u[:, 4]
    yt = -0.78 + 0.06 * (u[:, 6] - 0.5)
    yb = 0.56 * hf + 0.04 * (u[:, 7] - 0.5)
    return Geometry(
        cx=t(0.08 * (u[:, 0] - 0.5)),
        cy=t(0.08 * (u[:, 1] - 0.5)),
        scale=t(0.90 + 0.14 * u[:, 2]),
        wf=t(0.92 + 0.14 * u[:, 3]),
        hf=t(hf),
        ctr=t(0.92 + 0.16 * u[:, 5]),
        yt=t(yt),
        yb_r=t(yb - 0.05 - 0.03 * u[:, 8]),
        yb_l=t(yb),
        contrast=t(0.95 + 0.25 * u[:, 9]),
        brightness=t(0.10 * (u[:, 10] - 0.5)),
        gamma=t(1.0 + 0.5 * u[:, 11]),
        noise=t(0.008 + 0.02 * u[:, 12]),
        rib_phase=t(u[:, 13]),
        rib_period=t(0.15 + 0.03 * rng.random(n)),
    )


def coords(g: Geometry, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Patient coordinates: u (N, 1, W) and v (N, H, 1)."""
    dev = g.cx.device
    x = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=dev).view(1, 1, w)
    y = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=dev).view(1, h, 1)
    return (x - g.cx) / g.scale, (y - g.cy) / g.scale


def lung_profile(g: Geometry, u: torch.Tensor, v: torch.Tensor, sgn: torch.Tensor):
    """Shape terms of the lung on side ``sgn`` (N, 1, 1).

    Returns ``ua`` (mirrored u, lateral is larger), ``q`` (0 at the apex, 1 at the angle), the half
    width ``hwa`` at each row, and the dome level ``dome`` at each column.
    """
    ua = sgn * u
    yb = g.yb(sgn)
    q = (v - g.yt) / (yb - g.yt)
    hwa = (q / 0.33).clamp(0, 1).sqrt() * (1.0 - 0.06 * q) * g.a
    p = (ua - g.xc) / g.a
    dome = yb - 0.14 * g.hf * (1 - p * p).clamp(min=0.0)
    return ua, q, hwa, dome


def lung_side(g: Geometry, u: torch.Tensor, v: torch.Tensor, sgn: torch.Tensor, edge: float) -> torch.Tensor:
    """Soft mask (N, H, W) of one lung field (without the heart cut out)."""
    ua, _, hwa, dome = lung_profile(g, u, v, sgn)
    lat = hwa - (ua - g.xc).abs()
    return ramp(torch.minimum(lat, dome - v), edge)


def heart(g: Geometry, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Soft cardiac silhouette (N, H, W) resting on the left hemidiaphragm; width scales with ``g.ctr``."""
    hx = 0.11 * g.wf
    hy = g.yb_l - 0.17
    rx = 0.29 * g.ctr * g.wf
    ry = 0.25 + 0.04 * (g.ctr - 1)
    d = ((u - hx) / rx).square() + ((v - hy) / ry).square()
    return ramp(1 - d, 0.25)


_BANKS: dict[tuple, torch.Tensor] = {}


def noise_bank(h: int, w: int, cells: int, device, size: int = 256) -> torch.Tensor:
    """A fixed bank (size, H, W) of band-limited noise fields (bicubic upsampled random grids).

    Built once per process from a fixed seed; studies pick entries by index, which is far cheaper
    than upsampling fresh noise for every image.
    """
    key = (h, w, cells, str(device), size)
    if key not in _BANKS:
        gen = torch.Generator(device="cpu").manual_seed(1234 + cells)
        grid = torch.randn(size, 1, cells, cells, generator=gen)
        up = torch.nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)[:, 0]
        _BANKS[key] = (up / up.std()).to(device)
    return _BANKS[key]


def smooth_noise(rng: np.random.Generator, n: int, h: int, w: int, cells: int, device) -> torch.Tensor:
    """Band-limited noise (N, H, W) of unit scale: a signed sum of two bank entries per study."""
    bank = noise_bank(h, w, cells, device)
    idx = torch.as_tensor(rng.integers(0, bank.shape[0], (2, n)), device=bank.device)
    sign = torch.as_tensor(
        np.where(rng.random((2, n)) < 0.5, -1.0, 1.0).astype(np.float32), device=bank.device
    )
    return (bank[idx[0]] * sign[0].view(n, 1, 1) + bank[idx[1]] * sign[1].view(n, 1, 1)) * 0.7071


def _soft_tissue(g: Geometry, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-frequency anatomy (body, lungs, heart, mediastinum, abdomen): attenuation and visible lungs."""
    u, v = coords(g, h, w)
    e = 3.0 / w
    au = u.abs()
    one = torch.ones_like(g.cx)
    hrt = heart(g, u, v)
    lungs = torch.maximum(lung_side(g, u, v, -one, e), lung_side(g, u, v, one, e)).mul_(1 - 0.8 * hrt)
    bw = 0.97 - 0.03 * v.square() - 1.5 * (-(v + 0.70)).clamp(min=0)
    body = ramp(bw - au, 0.10)
    _, _, _, dome_r = lung_profile(g, u, v, -one)
    _, _, _, dome_l = lung_profile(g, u, v, one)
    abdomen = ramp(v - torch.where(u < 0, dome_r, dome_l), 4 * e)
    bubble = ramp(1 - ((u - 0.36 * g.wf) / 0.09).square() - ((v - g.yb_l + 0.02) / 0.05).square(), 0.3)
    mw = 0.085 + 0.035 * ramp(v + 0.35, 0.3)
    med = ramp(mw - (u - 0.01).abs(), 0.05) * ramp(0.60 - v, 0.1)
    trachea = ramp(0.032 - au, 0.015) * ramp(-0.22 - v, 0.1)
    spine = ramp(0.07 - au, 0.02) * (0.7 + 0.3 * torch.cos(2 * math.pi * (v + g.rib_phase) / 0.115))
    knob = ramp(1 - ((u - 0.12) / 0.07).square() - ((v + 0.40) / 0.06).square(), 0.4)
    hila = torch.exp(-((au - 0.16) / 0.06).square()) * torch.exp(-((v + 0.05) / 0.12).square())
    atten = 0.46 * body + 0.15 * abdomen * body - 0.22 * bubble * abdomen
    atten += 0.14 * med + 0.13 * hrt * (1 - 0.6 * med) + 0.05 * knob - 0.10 * trachea + 0.05 * spine
    atten += 0.07 * hila - 0.30 * lungs
    return atten, lungs


def render_anatomy(g: Geometry, h: int, w: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Attenuation map (N, H, W) of normal anatomy, plus the visible lungs and the vascular texture.

    Smooth soft-tissue structures are rendered at half resolution and upsampled (they have no fine
    detail); ribs, clavicles and lung markings are rendered at full resolution.
    """
    n = g.cx.shape[0]
    dev = g.cx.device
    lo, lungs_lo = _soft_tissue(g, (h + 1) // 2, (w + 1) // 2)
    up = torch.nn.functional.interpolate(
        torch.stack([lo, lungs_lo], 1), size=(h, w), mode="bilinear", align_corners=False
    )
    atten, lungs = up[:, 0], up[:, 1]
    u, v = coords(g, h, w)
    au = u.abs()
    # Posterior ribs arch up from the spine and curve down laterally; anterior ribs slope down medially.
    thorax = ramp(0.86 * g.wf - au, 0.08)
    r = v + 0.22 * au - 1.6 * (au - 0.45).clamp(min=0).square()
    post = ramp(torch.cos((r / g.rib_period + g.rib_phase) * (2 * math.pi)) - 0.40, 0.6) * ramp(0.60 - r, 0.1)
    ra = v + 0.45 * au
    ant = ramp(torch.cos((ra / (1.2 * g.rib_period) + 0.5 * g.rib_phase) * (2 * math.pi)) - 0.5, 0.5)
    ant = ant * ramp(0.75 - ra, 0.1) * ramp(au - 0.12, 0.1)
    vc = -0.70 * g.hf - 0.28 * (au - 0.08) + 0.12 * (au - 0.08).square()
    clav = ramp(0.032 - (v - vc).abs(), 0.016) * (ramp(0.80 - au, 0.06) * ramp(au - 0.06, 0.03))
    atten += ((0.03 + 0.05 * lungs) * post + 0.025 * ant * lungs) * thorax + 0.10 * clav
    hila_w = torch.exp(-((au - 0.16) / 0.30).square())
    texture = 0.6 * smooth_noise(rng, n, h, w, 28, dev) + 0.4 * smooth_noise(rng, n, h, w, 10, dev)
    return {
        "atten": atten,
        "lungs": lungs,
        "texture": texture * (0.5 + hila_w),
        "u": u.expand(n, 1, w),
        "v": v.expand(n, h, 1),
    }


def render_devices(g: Geometry, u: torch.Tensor, v: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """Attenuation of support devices for a subset: kind 1 = central line, 2 = endotracheal tube."""
    # Central venous line from the right subclavian region to the cavo-atrial junction.
    stop = 0.05 + 0.1 * g.hf
    xl = -0.06 - 0.9 * (-(v + 0.55)).clamp(min=0).square() - 0.15 * (-(v - stop)).clamp(min=0) * 0.2
    line = ramp(0.010 - (u - xl).abs(), 0.008) * ramp(stop - v, 0.02) * ramp(v + 0.95, 0.05)
    # Endotracheal tube: two bright walls in the trachea, tip above the carina.
    walls = ramp(0.006 - ((u - 0.0).abs() - 0.022).abs(), 0.006) * ramp(-0.35 - v, 0.02)
    k = kind.view(-1, 1, 1).to(u.dtype)
    return torch.where(k == 1, line, walls) * 0.45


def expose(atten: torch.Tensor, g: Geometry, gen: torch.Generator) -> torch.Tensor:
    """Film response: contrast, brightness, gamma and quantum noise; uint8 (N, H, W)."""
    img = (1 - torch.exp(-1.8 * atten.clamp(min=0))) / (1 - math.exp(-1.8))
    img = (img * g.contrast + g.brightness).clamp_(0, 1).pow_(g.gamma)
    img += torch.randn(img.shape, generator=gen, device=img.device) * g.noise
    return img.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
