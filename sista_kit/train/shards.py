"""Command line: write webdataset shards of a dataset folder, optionally with SIA's report embeddings.

    python -m sista_kit.train.shards DATA [--out DATA/shards] [--splits pretrain] [--max-count 1000]
        [--similarity encoder --similarity-kw path=/models/cxr-bert] [--overwrite]

With ``--similarity`` a text report-similarity provider (``encoder``, ``tfidf``, ``findings``) embeds
every report once, here, and each sample carries its embedding; a pretraining run with
``--dataset-type webdataset`` and the same provider and options reads them instead of embedding the
corpus again. Corpus-fitted providers are fitted on the pretraining split's reports, as in a run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sista_kit.train.config import parse_value

__all__ = ["main", "report_embedder", "write_training_shards"]


def report_embedder(similarity: str, options: dict[str, Any], corpus: list[str]) -> Any:
    """The ``embed`` of a text similarity provider built as a pretraining run builds it."""
    from sista_kit.similarity import PROVIDERS, TextReportSimilarity, build_similarity

    cls = PROVIDERS.get(similarity)
    if cls is None or not issubclass(cls, TextReportSimilarity):
        text = sorted(n for n, c in PROVIDERS.items() if issubclass(c, TextReportSimilarity))
        raise ValueError(
            f"--similarity {similarity!r}: only text providers embed reports ({', '.join(text)}); "
            "the others need no stored embeddings"
        )
    kwargs = dict(options)
    if cls.needs_corpus:
        kwargs["corpus"] = corpus
    return build_similarity(similarity, **kwargs).embed


def write_training_shards(
    data: str | Path,
    out: str | Path | None = None,
    splits: Sequence[str] = ("pretrain",),
    max_count: int = 1000,
    max_size: float = 1e9,
    similarity: str | None = None,
    similarity_kwargs: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """:func:`sista_kit.data.shards.write_shards` with the report embeddings of ``similarity`` (a provider
    name) stored in the samples; returns the shard folder."""
    from sista_kit.data.folder import read_manifest
    from sista_kit.data.shards import write_shards

    embed, info = None, None
    if similarity is not None:
        options = dict(similarity_kwargs or {})
        corpus = [r["report"] for r in read_manifest(data, "pretrain") if str(r.get("report") or "").strip()]
        embed = report_embedder(similarity, options, corpus)
        info = {"similarity": similarity, "similarity_kwargs": options}
    return write_shards(data, out, splits, max_count, max_size, embed, info, overwrite, progress)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sista_kit.train.shards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", help="a written dataset folder")
    p.add_argument("--out", default=None, help="shard folder (default DATA/shards)")
    p.add_argument("--splits", default="pretrain", help="comma list of splits to shard")
    p.add_argument("--max-count", type=int, default=1000, help="samples per shard, at most")
    p.add_argument("--max-size", type=float, default=1e9, help="bytes per shard, at most")
    p.add_argument("--similarity", default=None, help="text provider whose report embeddings are stored")
    p.add_argument(
        "--similarity-kw", action="append", default=[], metavar="KEY=VALUE", help="a provider option"
    )
    p.add_argument("--overwrite", action="store_true", help="replace shards of another request")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints the shard folder."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    options: dict[str, Any] = {}
    for item in ns.similarity_kw:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            parser.error(f"--similarity-kw expects KEY=VALUE, got {item!r}")
        options[key] = parse_value(raw)
    splits = [s.strip() for s in ns.splits.split(",") if s.strip()]
    try:
        out = write_training_shards(
            ns.data,
            ns.out,
            splits,
            ns.max_count,
            ns.max_size,
            ns.similarity,
            options,
            ns.overwrite,
            not ns.no_progress,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        parser.error(str(e))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
