"""SISTALoss inside open_clip_train's own train_one_epoch, with a tiny token-producing model."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from sista_kit.losses import SISTALoss


@dataclass
class _Text:
    """Token ids + word mask travelling as one object: open_clip's loop only calls ``.to``."""

    ids: torch.Tensor
    mask: torch.Tensor

    def to(self, device=None, non_blocking=False):
        return replace(self, ids=self.ids.to(device, non_blocking=non_blocking), mask=self.mask.to(device))


class _TinyTokenCLIP(nn.Module):
    def __init__(self, dim=16, vocab=50, patch=4):
        super().__init__()
        self.patch = nn.Conv2d(1, dim, patch, patch)
        self.embed = nn.Embedding(vocab, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, images, text):
        image_tokens = self.patch(images).flatten(2).transpose(1, 2)
        text_tokens = self.embed(text.ids)
        m = text.mask.unsqueeze(-1).float()
        return {
            "image_features": F.normalize(image_tokens.mean(1), dim=-1),
            "text_features": F.normalize((text_tokens * m).sum(1) / m.sum(1), dim=-1),
            "logit_scale": self.logit_scale.exp(),
            "image_tokens": image_tokens,
            "text_tokens": text_tokens,
            "text_mask": text.mask,
        }


class _Loader(list):
    num_batches = 2
    num_samples = 16


def test_one_epoch_of_open_clip_train():
    from open_clip_train.train import train_one_epoch

    torch.manual_seed(0)
    batches = _Loader()
    for _ in range(2):
        ids = torch.randint(0, 50, (8, 6))
        mask = torch.arange(6)[None] < torch.randint(1, 7, (8, 1))
        batches.append((torch.randn(8, 1, 16, 16), _Text(ids, mask)))
    data = {"train": SimpleNamespace(dataloader=batches, set_epoch=lambda epoch: None)}
    args = SimpleNamespace(
        device="cpu",
        precision="fp32",
        distill=False,
        accum_freq=1,
        skip_scheduler=True,
        grad_clip_norm=1.0,
        horovod=False,
        log_every_n_steps=1,
        world_size=1,
        batch_size=8,
        wandb=False,
        rank=0,
        local_rank=0,
    )
    model = _TinyTokenCLIP()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = SISTALoss(similarity="online", threshold=0.8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    first = sum(loss(**model(*batches[0]), output_dict=True).values()).item()
    train_one_epoch(model, data, loss, 0, optimizer, None, None, None, args)
    after = model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in ("patch.weight", "embed.weight", "logit_scale"))
    assert math.isfinite(first)
