"""Webdataset tar shards of a dataset folder: the streaming form of its splits for pretraining at scale.

Layout of a shard folder (``<dataset folder>/shards`` by default)::

    shards.json                  the index (written last: marks complete shards): the request (source
                                 folder, its meta.json, splits, shard limits), per split the shard files
                                 with their sample counts, and the report embeddings the samples carry
    {split}/{split}-000000.tar   samples in manifest order, each under the key of its position (000000042):
                                   png       the folder's image file, byte for byte
                                   txt       the report (UTF-8)
                                   json      labels and per-sample metadata (the manifest row)
                                   emb.npy   the report embedding, float32 (R,) (only with embeddings)
    {split}/sizes.json           {shard file: sample count}: open_clip's ``get_dataset_size`` convention
    {split}/reports.jsonl        the split's reports, one JSON string per line, in sample order (a run
                                 trains its tokenizer and corpus-fitted similarity providers on them
                                 without reading the shards)

Studies with an empty report are left out (pretraining drops them) and counted in the index. Writing
uses ``webdataset.ShardWriter`` (``max_count`` samples or ``max_size`` bytes per shard, whichever comes
first); reading is :mod:`sista_kit.train.shard_loader` (open_clip's webdataset pipeline).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sista_kit.data.folder import SPLITS, read_manifest, read_meta, row_finding_key
from sista_kit.data.synthetic.findings import CLASS_NAMES
from sista_kit.data.synthetic.generator import Sample
from sista_kit.io import write_json_atomic, write_text_atomic

__all__ = [
    "INDEX_FILE",
    "SHARDS_VERSION",
    "ShardItems",
    "read_shard_index",
    "sample_from_shard",
    "shard_corpus",
    "shard_urls",
    "write_shards",
]

SHARDS_VERSION = 1
INDEX_FILE = "shards.json"
#: Reports embedded at once while writing (the embedding callable sees chunks of this size).
EMBED_CHUNK = 256

ReportEmbed = Callable[[Sequence[str]], Any]


def _request(
    root: Path, splits: Sequence[str], max_count: int, max_size: float, embeddings: dict | None
) -> dict:
    return {
        "format_version": SHARDS_VERSION,
        "source": str(root.resolve()),
        "source_meta": read_meta(root),
        "splits": list(splits),
        "max_count": int(max_count),
        "max_size": float(max_size),
        "report_embeddings": embeddings,
    }


def _check_request(splits: Sequence[str], max_count: int, max_size: float) -> None:
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ValueError(f"splits must be some of {SPLITS}, got {list(splits)}")
    if max_count < 1:
        raise ValueError(f"max_count must be >= 1, got {max_count}")
    if max_size <= 0:
        raise ValueError(f"max_size must be positive, got {max_size}")


def _as_rows(values: Any, n: int, what: str) -> np.ndarray:
    array = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != n:
        raise ValueError(f"{what} returned shape {array.shape} for {n} reports; expected ({n}, R)")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} returned NaN or inf")
    return array


def _npy(row: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, row, allow_pickle=False)
    return buf.getvalue()


def _write_split(
    root: Path,
    out: Path,
    split: str,
    max_count: int,
    max_size: float,
    report_embed: ReportEmbed | None,
    progress: bool,
) -> dict:
    """Write one split's shards, sizes.json and reports.jsonl; its entry of the index."""
    import webdataset as wds
    from tqdm.auto import tqdm

    rows = read_manifest(root, split)
    kept = [r for r in rows if str(r.get("report") or "").strip()]
    folder = out / split
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    counts: dict[str, int] = {}
    dim = None
    bar = tqdm(total=len(kept), desc=f"shards {split}", unit="study", disable=not progress)
    with wds.ShardWriter(
        str(folder / f"{split}-%06d.tar"), maxcount=max_count, maxsize=max_size, verbose=0
    ) as sink:
        for start in range(0, len(kept), EMBED_CHUNK):
            chunk = kept[start : start + EMBED_CHUNK]
            emb = None
            if report_embed is not None:
                emb = _as_rows(report_embed([r["report"] for r in chunk]), len(chunk), "report_embed")
                dim = int(emb.shape[1])
            for j, row in enumerate(chunk):
                image = root / row["image"]
                if not image.is_file():
                    raise FileNotFoundError(f"missing file {image} (study {row['id']} of {root})")
                sample = {
                    "__key__": f"{start + j:09d}",
                    "png": image.read_bytes(),
                    "txt": row["report"],
                    "json": json.dumps(row).encode(),
                }
                if emb is not None:
                    sample["emb.npy"] = _npy(emb[j])
                sink.write(sample)
                name = Path(sink.fname).name
                counts[name] = counts.get(name, 0) + 1
            bar.update(len(chunk))
    bar.close()
    if not counts:
        raise ValueError(f"split {split!r} of {root} has no study with a report: nothing to shard")
    write_json_atomic(folder / "sizes.json", counts, indent=1)
    write_text_atomic(folder / "reports.jsonl", "".join(json.dumps(r["report"]) + "\n" for r in kept))
    return {
        "shards": [{"file": f"{split}/{name}", "count": c} for name, c in counts.items()],
        "num_samples": sum(counts.values()),
        "dropped_empty_reports": len(rows) - len(kept),
        "embedding_dim": dim,
    }


def write_shards(
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    splits: Sequence[str] = ("pretrain",),
    max_count: int = 1000,
    max_size: float = 1e9,
    report_embed: ReportEmbed | None = None,
    embeddings: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write webdataset tar shards of a dataset folder's splits (the layout of this module's docstring).

    Args:
        root: a complete dataset folder.
        out: the shard folder (default ``<root>/shards``).
        splits: the splits to shard.
        max_count, max_size: samples and bytes per shard, at most (webdataset's ShardWriter).
        report_embed: reports -> (n, R) embeddings (a text similarity provider's ``embed``) stored with
            every sample, so that runs read them instead of embedding the corpus again.
        embeddings: what made them (JSON-able; e.g. the provider name and options), recorded in the index;
            required with ``report_embed``.
        overwrite: replace shards written with another request (else FileExistsError).
        progress: show a progress bar.

    Returns the shard folder. When ``shards.json`` already records the same request nothing is written.
    """
    root = Path(root)
    out = Path(out) if out is not None else root / "shards"
    _check_request(splits, max_count, max_size)
    if (report_embed is None) != (embeddings is None):
        raise ValueError(
            "report_embed and embeddings go together: pass both (what embeds, and its name) or neither"
        )
    request = _request(root, splits, max_count, max_size, embeddings)
    index_path = out / INDEX_FILE
    if index_path.is_file():
        old = read_shard_index(out)
        if old.get("request") == request:
            return out
        if not overwrite:
            raise FileExistsError(
                f"{out} holds shards of another request ({index_path}); pass overwrite=True or another out"
            )
        index_path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    entries = {s: _write_split(root, out, s, max_count, max_size, report_embed, progress) for s in splits}
    meta = request["source_meta"]
    index = {
        "request": request,
        "image_size": int(meta["image_size"]),
        "class_names": list(meta.get("class_names") or CLASS_NAMES),
        "splits": entries,
    }
    write_json_atomic(index_path, index, indent=1)  # last: marks the shards complete
    return out


def read_shard_index(path: str | os.PathLike, what: str = "shard folder") -> dict:
    """The index of complete shards, with ``root`` (the shard folder) added.

    ``path`` is a shard folder (holding ``shards.json``) or a dataset folder with a ``shards/`` one.
    """
    path = Path(path)
    for folder in (path, path / "shards"):
        index_path = folder / INDEX_FILE
        if index_path.is_file():
            try:
                index = json.loads(index_path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{index_path} is corrupt: {e}") from e
            version = index.get("request", {}).get("format_version")
            if version != SHARDS_VERSION:
                raise ValueError(
                    f"{index_path} has shard format {version!r}; this version reads {SHARDS_VERSION}"
                )
            return dict(index, root=str(folder))
    raise FileNotFoundError(
        f"{what} {path} holds no complete shards (no {INDEX_FILE} in it or in its shards/); write them "
        "with `python -m sista_kit.train.shards DATASET_FOLDER`"
    )


def _split_entry(index: dict, split: str) -> dict:
    if split not in index["splits"]:
        raise ValueError(
            f"the shards in {index['root']} hold no split {split!r}; they hold {sorted(index['splits'])}"
        )
    return index["splits"][split]


def shard_urls(index: dict, split: str) -> list[str]:
    """Paths of a split's shard files (checked to exist), in writing order."""
    urls = [str(Path(index["root"]) / s["file"]) for s in _split_entry(index, split)["shards"]]
    missing = [u for u in urls if not Path(u).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} shard file(s) of split {split!r} are missing: {missing[:3]}")
    return urls


def shard_corpus(index: dict, split: str) -> list[str]:
    """A split's reports in sample order (from its ``reports.jsonl``)."""
    _split_entry(index, split)
    path = Path(index["root"]) / split / "reports.jsonl"
    try:
        with open(path) as fh:
            return [json.loads(line) for line in fh]
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file {path} (shards written incompletely?)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is corrupt: {e}") from e


def sample_from_shard(sample: dict) -> tuple[Sample, np.ndarray | None]:
    """A raw webdataset sample (bytes per extension) -> (:class:`Sample` without masks, report embedding
    or None). Raises ValueError naming the shard and key when a part is missing."""
    missing = [k for k in ("png", "txt", "json") if k not in sample]
    if missing:
        raise ValueError(
            f"shard sample {sample.get('__key__')!r} of {sample.get('__url__')!r} lacks {', '.join(missing)}"
        )
    row = json.loads(sample["json"])
    with Image.open(io.BytesIO(sample["png"])) as im:
        image = np.asarray(im)
    labels = np.asarray(row["labels"], dtype=np.float32)
    idx = {name: i for i, name in enumerate(CLASS_NAMES)}
    s = Sample(
        sample_id=row["id"],
        image=image,
        report=sample["txt"].decode("utf-8") if isinstance(sample["txt"], bytes) else sample["txt"],
        labels=labels,
        finding_key=row_finding_key(row),
        maskbits=np.zeros(image.shape[:2], dtype=np.uint8),
        boxes=[(idx[b["finding"]], *b["bbox"]) for b in row.get("boxes", [])],
        spans=[(idx[x["finding"]], x["start"], x["end"]) for x in row.get("spans", [])],
        negated=[idx[x] for x in row.get("negated", [])],
        findings=row.get("findings", []),
        device=row.get("device", "none"),
    )
    emb = np.load(io.BytesIO(sample["emb.npy"]), allow_pickle=False) if "emb.npy" in sample else None
    return s, emb


class ShardItems:
    """Raw shard sample -> pretraining item (the keys of :class:`~sista_kit.data.PretrainDataset`), with
    ``report_embedding`` (R,) when the shards carry embeddings and ``with_embeddings`` is set."""

    def __init__(self, tokenizer: Any, max_length: int, transform: Any, with_embeddings: bool = False):
        self.tokenizer, self.max_length, self.transform = tokenizer, max_length, transform
        self.with_embeddings = with_embeddings
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)

    def __call__(self, sample: dict) -> dict:
        import torch

        from sista_kit.data.datasets import pretrain_item

        s, emb = sample_from_shard(sample)
        item = pretrain_item(s, self.tokenizer, self.max_length, self.transform, self.pad_id)
        if self.with_embeddings:
            if emb is None:
                raise ValueError(
                    f"shard sample {sample.get('__key__')!r} of {sample.get('__url__')!r} has no emb.npy"
                )
            item["report_embedding"] = torch.from_numpy(emb)
        return item
