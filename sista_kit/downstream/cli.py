"""``python -m sista_kit.downstream {cls,seg,det,loc} --checkpoint DIR|random ...``: one transfer run,
writing ``OUT/metrics.json`` (and checkpoints)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = argparse.ArgumentParser(prog="python -m sista_kit.downstream", description=__doc__)
    p.add_argument("task", choices=["cls", "seg", "det", "loc"])
    p.add_argument(
        "--checkpoint",
        required=True,
        help="sista_kit checkpoint folder, 'random' (needs --arch) "
        "or 'random:DIR' (DIR's architecture, random weights)",
    )
    p.add_argument("--data-root", required=True, help="folder of a sista_kit disk export")
    p.add_argument("--out", required=True, help="output folder (metrics.json, checkpoints, logs)")
    p.add_argument("--fraction", type=float, default=1.0, help="label fraction of the training split (0, 1]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--arch", default=None, help="model_name[:image_size[:in_chans]], e.g. sista_vit_tiny:64:1"
    )
    p.add_argument(
        "--iters", type=int, default=None, help="training steps (loc: L-BFGS iterations of each fit)"
    )
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default=None, help="default: cuda when visible, else cpu"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g = p.add_argument_group("cls")
    g.add_argument(
        "--protocol",
        choices=["linear", "finetune"],
        default="linear",
        help="linear probe on the frozen encoder (default) or full fine-tuning",
    )
    g = p.add_argument_group("loc")
    g.add_argument(
        "--l2",
        type=_l2_grid,
        default=None,
        help="comma list of L2 weights to choose from on the validation split (default 1e-6,1e-5,1e-4,0)",
    )
    g = p.add_argument_group("seg / det")
    g.add_argument("--config", default=None, help="shipped config name or a config file")
    g.add_argument("--frozen", action="store_true", help="freeze the backbone's trunk")
    g.add_argument(
        "--classes",
        default=None,
        help="comma-separated classes to learn, e.g. background,pneumothorax (default: the config's)",
    )
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument(
        "--eval-split",
        choices=["test", "val"],
        default="test",
        help="split to score on (val: to choose a schedule or protocol without looking at test)",
    )
    g.add_argument(
        "--cfg-options",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra mmengine config overrides (values parsed as JSON when possible)",
    )
    return p


def _l2_grid(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if any(not v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"L2 weights must be >= 0, got {text!r}")
    return values


def _options(pairs: Sequence[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--cfg-options expects KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run one task; prints the metrics as JSON."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.eval_split != "test" and args.task in ("cls", "loc"):
        parser.error(f"--eval-split is for seg / det; {args.task} scores test (loc chooses its L2 on val)")
    common = dict(
        data_root=args.data_root,
        out=args.out,
        fraction=args.fraction,
        seed=args.seed,
        arch=args.arch,
        progress=not args.no_progress,
    )
    if args.task == "cls":
        from .cls import run_cls

        metrics = run_cls(
            args.checkpoint,
            protocol=args.protocol,
            iters=args.iters,
            batch_size=args.batch_size or 64,
            lr=args.lr,
            device=args.device or ("cuda" if _cuda() else "cpu"),
            **common,
        )
    elif args.task == "loc":
        from .patch_probe import L2_GRID, run_loc

        metrics = run_loc(
            args.checkpoint,
            max_iter=args.iters or 500,
            l2_grid=args.l2 or L2_GRID,
            device=args.device or ("cuda" if _cuda() else "cpu"),
            **common,
        )
    else:
        from .mmrun import run_mm

        metrics = run_mm(
            args.task,
            args.config,
            checkpoint=args.checkpoint,
            iters=args.iters,
            batch_size=args.batch_size,
            lr=args.lr,
            frozen=True if args.frozen else None,
            resume=args.resume,
            device=args.device,
            options=_options(args.cfg_options),
            classes=args.classes.split(",") if args.classes else None,
            eval_split=args.eval_split,
            **common,
        )
    json.dump(metrics, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    raise SystemExit(main())
