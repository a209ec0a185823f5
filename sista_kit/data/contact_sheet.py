"""Contact sheet of samples: image with mask overlays and boxes, and the wrapped report.

python -m sista_kit.data.contact_sheet --out sheet.png [--data synthetic|iu] [--n 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import textwrap

import numpy as np

from .synthetic.findings import CLASS_NAMES
from .synthetic.generator import Sample

COLORS = (
    np.array(
        [
            [230, 57, 70],
            [255, 183, 3],
            [33, 158, 188],
            [144, 190, 109],
            [199, 125, 255],
            [244, 132, 95],
            [120, 220, 220],
        ],
        dtype=np.float32,
    )
    / 255.0
)


def overlay(sample: Sample, alpha: float = 0.35) -> np.ndarray:
    """RGB float image with each finding's mask tinted in its colour."""
    img = np.repeat(sample.image[..., None].astype(np.float32) / 255.0, 3, -1)
    for k, m in enumerate(sample.masks):
        if m.any():
            img[m] = (1 - alpha) * img[m] + alpha * COLORS[k]
    return img


def contact_sheet(samples: list[Sample], out: str, cols: int = 4, wrap: int = 44) -> None:
    """Save a grid of samples (image over report) to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    rows = -(-len(samples) // cols)
    fig, axes = plt.subplots(
        rows * 2, cols, figsize=(cols * 3.4, rows * 6.2), gridspec_kw={"height_ratios": [1, 0.7] * rows}
    )
    axes = np.asarray(axes).reshape(rows * 2, cols)
    for ax in axes.ravel():
        ax.axis("off")
    for i, s in enumerate(samples):
        r, c = divmod(i, cols)
        ax = axes[2 * r, c]
        ax.imshow(overlay(s), interpolation="bilinear")
        for k, x0, y0, x1, y1 in s.boxes:
            ax.add_patch(
                patches.Rectangle(
                    (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.2, edgecolor=COLORS[k]
                )
            )
        ax.set_title(f"{s.sample_id}\n{s.finding_key}", fontsize=7)
        words = s.report
        axes[2 * r + 1, c].text(
            0,
            1,
            "\n".join(textwrap.wrap(words, wrap)[:22]),
            va="top",
            ha="left",
            fontsize=6.5,
            family="monospace",
            transform=axes[2 * r + 1, c].transAxes,
        )
    handles = [patches.Patch(color=COLORS[k], label=n) for k, n in enumerate(CLASS_NAMES)]
    fig.legend(handles=handles, loc="lower center", ncol=len(CLASS_NAMES), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--data", choices=("synthetic", "iu"), default="synthetic")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--cols", type=int, default=4)
    a = p.parse_args(argv)
    if a.data == "synthetic":
        from .synthetic import generate

        pool = generate(max(a.n * 4, 32), seed=a.seed, image_size=a.image_size)
        # Prefer a mix: a couple of normal studies, the rest abnormal.
        normal = [s for s in pool if s.finding_key == "normal"][: max(1, a.n // 4)]
        samples = (normal + [s for s in pool if s.finding_key != "normal"])[: a.n]
    else:
        from .iu import generate_iu

        pool = generate_iu(seed=a.seed, image_size=a.image_size, limit=400)
        samples = [s for s in pool if s.finding_key != "normal"][: a.n - a.n // 4] + [
            s for s in pool if s.finding_key == "normal"
        ][: a.n // 4]
    contact_sheet(samples, a.out, cols=a.cols)
    print(f"wrote {a.out} ({len(samples)} samples)")


if __name__ == "__main__":
    main()
