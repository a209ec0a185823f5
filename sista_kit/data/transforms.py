"""Image transforms for grayscale radiographs: to a normalised float tensor, light augmentation."""

from __future__ import annotations

import numpy as np
import torch

#: Normalisation of 8-bit radiographs scaled to [0, 1] (close to the synthetic data's statistics).
MEAN, STD = 0.5, 0.25


class ImageTransform:
    """uint8 (H, W) array or tensor -> float32 (1, H, W), normalised as (x / 255 - mean) / std.

    With ``augment=True`` a light random affine (rotation, scale, shift) and brightness / contrast
    jitter are applied first (torchvision v2, torch RNG: seed workers through the DataLoader).
    ``image_size`` resizes to a square size when given.
    """

    def __init__(
        self,
        mean: float = MEAN,
        std: float = STD,
        augment: bool = False,
        image_size: int | None = None,
        degrees: float = 5.0,
        scale: tuple[float, float] = (0.93, 1.07),
        translate: float = 0.04,
        jitter: float = 0.1,
    ) -> None:
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.mean, self.std, self.augment, self.image_size = mean, std, augment, image_size
        self.degrees, self.scale, self.translate, self.jitter = degrees, scale, translate, jitter

    def __call__(self, image) -> torch.Tensor:
        x = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image))
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3:
            raise ValueError(f"expected an image (H, W) or (C, H, W), got shape {tuple(x.shape)}")
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        from torchvision.transforms.v2 import functional as F

        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.resize(x, [self.image_size, self.image_size], antialias=True)
        if self.augment:
            r = torch.rand(6)
            h, w = x.shape[-2:]
            x = F.affine(
                x,
                angle=float((r[0] * 2 - 1) * self.degrees),
                translate=[
                    float((r[1] * 2 - 1) * self.translate * w),
                    float((r[2] * 2 - 1) * self.translate * h),
                ],
                scale=float(self.scale[0] + r[3] * (self.scale[1] - self.scale[0])),
                shear=[0.0, 0.0],
            )
            x = (x - 0.5) * (1 + (r[4] * 2 - 1) * self.jitter) + 0.5 + (r[5] * 2 - 1) * self.jitter * 0.5
            x = x.clamp(0, 1)
        return (x - self.mean) / self.std
