"""Command line: ``sista-pretrain`` / ``python -m sista_kit.train``.

Every :class:`~sista_kit.train.config.PretrainConfig` field is a flag (``--batch-size 64``,
``--no-augment``...). Precedence: defaults < ``--config FILE`` (JSON or YAML) < flags. Loss
hyperparameters: ``--loss-kw lambda_sta=0.5 --loss-kw similarity=labels`` (values parsed as JSON when
they parse) or ``--loss-kwargs '{"lambda_sta": 0.5}'``.

    sista-pretrain --loss sista --epochs 2
    torchrun --nproc_per_node 2 -m sista_kit.train --loss sista --device cpu --batch-size 16
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from typing import Any

from sista_kit.train.config import PretrainConfig, load_config_file, parse_value

__all__ = ["main", "build_parser", "config_from_args"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sista-pretrain",
        description="Pretrain a CLIP-style model on image-report pairs with a SISTA or baseline loss.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", help="JSON or YAML file with config keys (flags override it)")
    parser.add_argument("--loss-kw", action="append", metavar="KEY=VALUE", help="one loss hyperparameter")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    hints = typing.get_type_hints(PretrainConfig)
    for f in dataclasses.fields(PretrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction)
        elif f.name in ("loss_kwargs", "model"):
            parser.add_argument(flag, dest=f.name, type=parse_value, help="name / path, or JSON")
        else:
            parser.add_argument(flag, dest=f.name, type=parse_value)
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> tuple[PretrainConfig, argparse.Namespace]:
    """Parse the command line into a :class:`PretrainConfig`."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    values: dict[str, Any] = {}
    if getattr(ns, "config", None):
        values.update(load_config_file(ns.config))
    field_names = {f.name for f in dataclasses.fields(PretrainConfig)}
    for key, value in vars(ns).items():
        if key in field_names:
            values[key] = value
    kwargs = dict(values.get("loss_kwargs") or {})
    if not isinstance(kwargs, dict):
        parser.error("--loss-kwargs must be a JSON object")
    for item in getattr(ns, "loss_kw", None) or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            parser.error(f"--loss-kw expects KEY=VALUE, got {item!r}")
        kwargs[key] = parse_value(raw)
    values["loss_kwargs"] = kwargs
    try:
        return PretrainConfig.from_dict(values), ns
    except (TypeError, ValueError) as e:
        parser.error(str(e))
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sista-pretrain``; prints the final checkpoint folder."""
    cfg, ns = config_from_args(argv)
    if getattr(ns, "print_config", False):
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from sista_kit.train.pretrain import pretrain

    path = pretrain(cfg)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
