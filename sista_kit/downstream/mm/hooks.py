"""A tqdm progress bar over training iterations, as an mmengine hook."""

from __future__ import annotations

import math
from typing import Any

from mmengine.hooks import Hook
from tqdm.auto import tqdm

from .registry import HOOKS, register


class TqdmProgressHook(Hook):
    """Show training progress (iterations, loss) with tqdm; ``disable=True`` hides it."""

    priority = "VERY_LOW"

    def __init__(self, desc: str = "train", disable: bool | None = None) -> None:
        self.desc = desc
        self.disable = disable
        self._bar: Any = None

    def before_train(self, runner: Any) -> None:
        self._bar = tqdm(
            total=runner.max_iters,
            initial=runner.iter,
            desc=self.desc,
            disable=self.disable,
            dynamic_ncols=True,
        )

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        loss = (outputs or {}).get("loss")
        if loss is not None:
            value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
            self._bar.set_postfix(loss=f"{value:.4f}" if math.isfinite(value) else str(value), refresh=False)

    def after_train(self, runner: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


register([HOOKS], TqdmProgressHook)
