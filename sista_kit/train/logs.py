"""CSV logs and the progress bar, fed through open_clip's ``tb_writer.add_scalar`` calls.

open_clip's ``train_one_epoch`` / ``evaluate`` report every logged value as
``tb_writer.add_scalar("train/<name>", value, step)``; :class:`RunLogger` has that method, so the
loop needs no change to write ``train.csv`` (one row per logged step) and ``val.csv`` (one row per
evaluation) and to show the loss terms and throughput on the progress bar. Under DDP,
:class:`RankMeanLosses` makes the logged loss terms the mean over all ranks (open_clip logs rank 0's).
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sista_kit.losses.distributed import mean_over_ranks

__all__ = ["RunLogger", "RankMeanLosses", "read_csv"]


class RankMeanLosses(nn.Module):
    """A training loss whose returned terms read as their mean over the process group.

    open_clip logs the loss terms rank 0 computed; a term over each rank's own pairs (STA, MGCA's local
    terms) is then rank 0's share only. Each term ``x`` is returned as ``x + (mean_r(x) - x)`` with the
    correction detached: its value is the all-ranks mean, its gradient that of the local ``x``, so
    training (DDP averages the local gradients) is unchanged. One all-reduce of the terms per step.
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, *args: Any, output_dict: bool = False, **kwargs: Any) -> Any:
        out = self.loss(*args, output_dict=True, **kwargs)
        names = list(out)
        dtype = functools.reduce(torch.promote_types, [out[n].dtype for n in names], torch.float32)
        local = torch.stack([out[n].detach().to(dtype).reshape(()) for n in names])
        mean = mean_over_ranks(local)
        terms = {n: out[n] + (mean[i] - local[i]).to(out[n].dtype) for i, n in enumerate(names)}
        return terms if output_dict else sum(terms.values())


class RunLogger:
    """A TensorBoard-SummaryWriter-like sink writing CSV files and a tqdm postfix.

    Args:
        folder: run folder for ``train.csv`` / ``val.csv`` (None = no files).
        progress: object with a ``bar`` attribute (the current tqdm bar) or None.
    """

    def __init__(self, folder: str | Path | None, progress: Any = None):
        self.folder = Path(folder) if folder is not None else None
        self.progress = progress
        self._rows: dict[str, dict[str, Any]] = {}
        self._current: dict[str, Any] = {}

    def add_scalar(self, tag: str, value: Any, step: int) -> None:
        group, _, name = tag.partition("/")
        if not name:
            group, name = "train", tag
        value = float(value)
        key = "step" if group == "train" else "epoch"
        row = self._rows.get(group)
        if row is not None and row[key] != step:
            self._write(group, row)
            row = None
        if row is None:
            row = self._rows[group] = {key: step}
        row[name] = value
        if group == "train":
            self._update_bar(name, value)

    def _update_bar(self, name: str, value: float) -> None:
        if name.endswith("loss") or name == "samples_per_second":
            short = "pairs/s" if name == "samples_per_second" else name.replace("_loss", "")
            self._current[short] = f"{value:.4g}" if short != "pairs/s" else f"{value:.1f}"
        bar = getattr(self.progress, "bar", None)
        if bar is not None:
            bar.set_postfix(self._current, refresh=False)

    def _write(self, group: str, row: dict[str, Any]) -> None:
        if self.folder is None:
            return
        path = self.folder / f"{group}.csv"
        new = not path.exists()
        fields = list(row)
        if not new:
            with open(path, newline="") as fh:
                header = next(csv.reader(fh), [])
            extra = [f for f in fields if f not in header]
            if extra:  # a new column (e.g. a loss term that appears later): rewrite with the wider header
                rows = read_csv(path)
                header = header + extra
                with open(path, "w", newline="") as fh:
                    writer = csv.DictWriter(fh, fieldnames=header)
                    writer.writeheader()
                    writer.writerows(rows)
            fields = header
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerow(row)

    def flush(self) -> None:
        """Write the pending rows."""
        for group, row in list(self._rows.items()):
            self._write(group, row)
        self._rows.clear()

    def close(self) -> None:
        self.flush()


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a log CSV with numeric fields converted to float."""
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            out.append({k: _num(v) for k, v in row.items()})
    return out


def _num(v: str | None) -> Any:
    if v is None or v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return v
