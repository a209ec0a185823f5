"""The head's training-loss curve of an mmengine run, from the message hub, as ``head_loss.csv``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook

from sista_kit.io import write_text_atomic
from sista_kit.train.logs import read_csv

FILENAME = "head_loss.csv"


class HeadLossHook(Hook):
    """Keep ``train/loss`` and every ``train/*loss*`` term of the message hub at each iteration and
    write them to ``<work_dir>/head_loss.csv`` (columns ``iter``, ``loss``, the terms) at every
    checkpoint and at the end of training. A resumed run keeps the rows up to its start."""

    priority = "LOW"  # after RuntimeInfoHook has put the iteration's losses in the hub

    def __init__(self, filename: str = FILENAME) -> None:
        self.filename = filename
        self.rows: list[dict[str, float]] = []
        self.path: Path | None = None

    def before_train(self, runner: Any) -> None:
        self.path = Path(runner.work_dir) / self.filename
        old = read_csv(self.path) if runner.iter > 0 and self.path.is_file() else []
        self.rows = [{k: v for k, v in r.items() if v is not None} for r in old if r["iter"] <= runner.iter]

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        row = {"iter": float(runner.iter + 1)}  # mmengine counts the iteration after this hook
        for key, buf in runner.message_hub.log_scalars.items():
            name = key.removeprefix("train/")
            if name != key and "loss" in name:
                row[name] = float(buf.current())
        self.rows.append(row)

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self.write()

    def after_train(self, runner: Any) -> None:
        self.write()

    def write(self) -> Path | None:
        """Write the rows kept so far; returns the file (None before training)."""
        if self.path is None:
            return None
        terms = sorted({k for r in self.rows for k in r} - {"iter", "loss"})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["iter", "loss", *terms], lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: int(v) if k == "iter" else f"{v:.6g}" for k, v in r.items()})
        return write_text_atomic(self.path, buf.getvalue())
