"""Command line of the prepare step (``sista-prepare`` / ``python -m sista_kit.data.prepare``)."""

from __future__ import annotations

import argparse
import logging
import sys

from .core import prepare
from .registry import DATASETS

#: Reader options per dataset: (flag, type, default, help).
OPTIONS: dict[str, list[tuple[str, type, object, str]]] = {
    "mimic-cxr": [
        ("--reports", str, None, "folder holding files/pXX/pXXXXXXXX/sXXXXXXXX.txt (default: --src)"),
        ("--uncertainty", str, "ones", "CheXpert -1 labels: ones | zeros"),
        ("--min-words", int, 3, "drop reports with fewer words than this"),
        ("--probe-fraction", float, 0.1, "share of official-train subjects kept for in-domain probes"),
    ],
    "chexpert": [
        ("--uncertainty", str, "ones", "-1 labels: ones | zeros"),
        ("--val-size", int, 5000, "images of train.csv held out as val (whole patients)"),
    ],
    "rsna": [],
    "siim": [],
    "covidx": [("--val-share", float, 0.1, "share of train patients held out as val (without val.txt)")],
    "object-cxr": [],
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sista-prepare", description=__doc__)
    sub = p.add_subparsers(dest="dataset", required=True, metavar="{" + ",".join(DATASETS) + "}")
    for name in DATASETS:
        sp = sub.add_parser(name, help=f"prepare {name} from its official layout")
        sp.add_argument("--src", required=True, help="the dataset folder as downloaded")
        sp.add_argument("--out", required=True, help="the dataset folder to write")
        sp.add_argument("--image-size", type=int, default=224, help="square output size in pixels")
        sp.add_argument("--seed", type=int, default=0, help="seed of the drawn splits")
        sp.add_argument("--workers", type=int, default=1, help="decoding processes")
        sp.add_argument("--overwrite", action="store_true", help="replace a different dataset in --out")
        sp.add_argument("--no-progress", action="store_true", help="no progress bar")
        for flag, typ, default, text in OPTIONS[name]:
            sp.add_argument(flag, type=typ, default=default, help=text)
        if name == "mimic-cxr":
            sp.add_argument(
                "--no-last-paragraph",
                action="store_true",
                help="drop reports without FINDINGS / IMPRESSION instead of using their last paragraph",
            )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = {
        flag.lstrip("-").replace("-", "_"): getattr(args, flag.lstrip("-").replace("-", "_"))
        for flag, *_ in OPTIONS[args.dataset]
    }
    if args.dataset == "mimic-cxr":
        options["last_paragraph"] = not args.no_last_paragraph
    if "uncertainty" in options and options["uncertainty"] not in ("ones", "zeros"):
        raise SystemExit(f"--uncertainty must be ones or zeros, got {options['uncertainty']!r}")
    try:
        out = prepare(
            args.dataset,
            args.src,
            args.out,
            image_size=args.image_size,
            seed=args.seed,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            **options,
        )
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as e:
        print(f"sista-prepare {args.dataset}: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
