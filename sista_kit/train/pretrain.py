"""Pretraining through open_clip_train: its distributed init, seeding, LR schedules, AMP and
``train_one_epoch`` / ``evaluate`` loop, with sista_kit's model, losses and data.

What is added around open_clip's loop, and why (its ``main()`` is argparse- and file-bound and
cannot take these, while ``train_one_epoch`` itself is used unchanged):

- the batch's text side is a :class:`~sista_kit.models.TextBatch` (word ids, raw-report embeddings,
  labels) instead of a token tensor: it has ``.to()``, so the loop moves it like a tensor;
- the loss comes from sista_kit's registry and may own parameters (MGCA prototypes): they join the
  optimiser and the checkpoint's training state;
- the sampler cuts each global batch into contiguous per-rank slices, so the gathered batch equals
  the single-process batch;
- checkpoints are safetensors folders written atomically, with optimizer / scaler / loss / RNG
  state (``weights_only`` loadable) for an exact resume at epoch boundaries;
- logs go to CSV (and the progress bar) through open_clip's ``tb_writer`` hook.
"""

from __future__ import annotations

import inspect
import logging
import shutil
from argparse import Namespace
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from sista_kit.models.checkpoint import MODEL_FILE, load_state_dict_checked, save_checkpoint
from sista_kit.models.weights import read_safetensors
from sista_kit.train.config import PretrainConfig
from sista_kit.train.data import (
    PretrainCollate,
    ReportEmbeddingTable,
    eval_loader,
    make_loader,
    prepare_dataset_folder,
)
from sista_kit.train.heldout import HeldoutRetrieval
from sista_kit.train.logs import RankMeanLosses, RunLogger
from sista_kit.train.state import checkpoint_dirs, resume_point, rng_state, set_rng_state

__all__ = ["pretrain", "build_training_loss", "model_config_for_tokenizer"]

_log = logging.getLogger("sista_kit.train")


def random_seed(seed: int = 42, rank: int = 0) -> None:
    """open_clip_train.main.random_seed (that module imports webdataset & co. at import time)."""
    import random

    import numpy as np

    torch.manual_seed(seed + rank)
    np.random.seed(seed + rank)  # noqa: NPY002 (open_clip seeds the global generators)
    random.seed(seed + rank)


def _open_clip_args(cfg: PretrainConfig) -> Namespace:
    """The attributes open_clip_train's functions read from their argparse namespace."""
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Namespace(
        device=device,
        dist_backend=cfg.dist_backend,
        dist_url=None,
        horovod=False,
        no_set_device_rank=False,
        precision=cfg.precision,
        distill=False,
        accum_freq=cfg.accum_freq,
        skip_scheduler=False,
        grad_clip_norm=cfg.grad_clip_norm,
        log_every_n_steps=cfg.log_every_n_steps,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        val_frequency=cfg.val_frequency,
        zeroshot_frequency=0,
        wandb=False,
        save_logs=False,
        checkpoint_path=None,
        seed=cfg.seed,
    )


def _join_group(args: Namespace) -> torch.device:
    """Fill open_clip's rank fields from an already initialised process group."""
    import open_clip_train.distributed as ocd

    args.world_size = torch.distributed.get_world_size()
    args.rank = torch.distributed.get_rank()
    args.local_rank = ocd.world_info_from_env()[0]
    args.distributed = args.world_size > 1
    if args.device.startswith("cuda") and args.distributed:
        args.device = f"cuda:{args.local_rank}"
    return torch.device(args.device)


@contextmanager
def _run_logging(log_file: Path | None):
    """open_clip logs through the root logger: send INFO to the run's out.log for the run's duration."""
    root = logging.getLogger()
    old_level = root.level
    handler = None
    if log_file is not None:
        handler = logging.FileHandler(log_file)
        handler.setFormatter(
            logging.Formatter("%(asctime)s | %(levelname)s | %(message)s", "%Y-%m-%d,%H:%M:%S")
        )
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        if handler is not None:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(old_level)


def attention_backend(device: torch.device, precision: str) -> AbstractContextManager:
    """The attention kernel for training: PyTorch's math path on CPU in bfloat16.

    The CPU flash-attention kernel's bfloat16 backward was ~40 % of a tiny-tower step in the torch
    profiler (batch 64, 64 px, one thread: 542 against 430 ms per step with the math path, ``pytest
    benchmarks/test_bench_pretrain.py --benchmark-only -k profile_bf16``); in float32 and on CUDA the
    default choice stays.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if device.type == "cpu" and precision in ("amp_bf16", "bf16"):
        return sdpa_kernel(SDPBackend.MATH)
    return nullcontext()


def model_config_for_tokenizer(
    model: str | dict, tokenizer: Any, max_length: int, image_size: int | None
) -> dict:
    """The model config adapted to the tokenizer (vocabulary, padding id), context and image size."""
    from sista_kit.models.configs import model_config

    cfg = model_config(model)
    if isinstance(model, str) and "name" not in cfg:
        cfg["name"] = Path(model).stem
    text = cfg["text_cfg"]
    hf = text.get("hf_config")
    if hf is not None and not text.get("pretrained"):
        hf["vocab_size"] = len(tokenizer)
        hf["pad_token_id"] = int(tokenizer.pad_token_id or 0)
        hf["max_position_embeddings"] = max(int(hf.get("max_position_embeddings", 0)), max_length)
    text["context_length"] = max_length
    if image_size is not None:
        cfg["vision_cfg"]["image_size"] = int(image_size)
    return cfg


def build_training_loss(
    name: str, loss_kwargs: dict[str, Any], embed_dim: int, corpus: list[str]
) -> torch.nn.Module:
    """``build_loss(name, **kwargs)`` plus what the run knows: ``embed_dim`` for losses that take it,
    the pretraining corpus for a report-similarity provider that is fitted on it (TF-IDF, findings)."""
    from sista_kit.losses import build_loss
    from sista_kit.losses.registry import loss_class

    kwargs = dict(loss_kwargs)
    cls = loss_class(name)
    if "embed_dim" in inspect.signature(cls.__init__).parameters:
        kwargs.setdefault("embed_dim", embed_dim)
    from sista_kit.similarity import PROVIDERS

    provider = PROVIDERS.get(kwargs["similarity"]) if isinstance(kwargs.get("similarity"), str) else None
    if provider is not None and provider.needs_corpus:
        kwargs["similarity_kwargs"] = {"corpus": corpus, **(kwargs.get("similarity_kwargs") or {})}
    return build_loss(name, **kwargs)


def _providers(loss: torch.nn.Module) -> list[Any]:
    from sista_kit.similarity import ReportSimilarity

    found = []
    for module in loss.modules():
        provider = getattr(module, "similarity", None)
        if isinstance(provider, ReportSimilarity) and provider not in found:
            found.append(provider)
    return found


def _optimizer(model: torch.nn.Module, loss: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW with open_clip's grouping: no weight decay on gains, biases, norms and logit_scale."""

    def exclude(n: str, p: torch.nn.Parameter) -> bool:
        return (
            p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n or "norm" in n.lower()
        )

    named = [(f"model.{n}", p) for n, p in model.named_parameters()] + [
        (f"loss.{n}", p) for n, p in loss.named_parameters()
    ]
    no_decay = [p for n, p in named if exclude(n, p) and p.requires_grad]
    decay = [p for n, p in named if not exclude(n, p) and p.requires_grad]
    return torch.optim.AdamW(
        [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": cfg.wd}],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
    )


def _tokenizer(cfg: PretrainConfig, run_dir: Path, corpus: list[str], is_master: bool, barrier) -> Any:
    from sista_kit.data.tokenizer import load_tokenizer, train_tokenizer

    if cfg.tokenizer:
        return load_tokenizer(cfg.tokenizer)
    folder = run_dir / "tokenizer"
    if is_master and not (folder / "tokenizer.json").is_file():
        train_tokenizer(corpus, folder, vocab_size=cfg.vocab_size)
    barrier()
    return load_tokenizer(folder)


def _tokenizer_files(tokenizer: Any) -> dict[str, bytes]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return {f"tokenizer/{p.name}": p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


def _restore(resume: Any, model, loss, optimizer, scaler, args: Namespace) -> tuple[int, Any]:
    """Load weights, loss, optimizer and scaler state from a checked resume point; (start epoch, RNG state
    of this rank or None)."""
    state = resume.train_state
    weights = resume.path / MODEL_FILE
    load_state_dict_checked(model, read_safetensors(weights), source=str(weights))
    loss.load_state_dict(state["loss"])
    if state.get("loss_step") is not None:
        loss.step = int(state["loss_step"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    start_epoch = int(state["epoch"])
    rngs = state.get("rng") or []
    if len(rngs) != args.world_size:
        _log.warning(
            "resuming %d processes from a run of %d: data order is kept, random draws are not",
            args.world_size,
            len(rngs),
        )
    if args.rank == 0:
        _log.info("resumed %s at epoch %d", resume.path, start_epoch)
    return start_epoch, (rngs[args.rank % len(rngs)] if rngs else None)


def _train_state(
    done: int, steps_per_epoch: int, optimizer, scaler, loss, states: list, args: Namespace
) -> dict:
    """What ``train_state.pt`` holds for an exact resume (weights-only loadable)."""
    return {
        "epoch": done,
        "step": done * steps_per_epoch,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "loss": loss.state_dict(),
        "loss_step": int(loss.step) if isinstance(getattr(loss, "step", None), int) else None,
        "rng": states,
        "world_size": args.world_size,
    }


def _prune_checkpoints(ckpt_dir: Path, done: int, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints up to epoch ``done``: a damaged later epoch_N (skipped on
    resume) never pushes out the checkpoint just written."""
    upto = [d for n, d in checkpoint_dirs(ckpt_dir) if n <= done]
    later = [d for n, d in checkpoint_dirs(ckpt_dir) if n > done]
    for old in upto[:-keep] + later:
        shutil.rmtree(old, ignore_errors=True)


def _loaders(
    cfg: PretrainConfig,
    folder: Path | None,
    tokenizer: Any,
    corpus: list[str],
    loss: torch.nn.Module,
    image_size: int,
    device: torch.device,
    args: Namespace,
    name: str,
    shards: Any = None,
) -> tuple[dict[str, Any], HeldoutRetrieval | None]:
    """open_clip's ``data`` dict (train, and val on the master) and the held-out retrieval of the run; text
    providers embed every report once here, unless the training shards carry their embeddings (``shards``:
    a :class:`~sista_kit.train.shard_loader.ShardSource`; ``folder`` is then None when only shards exist)."""
    from sista_kit.data.datasets import PretrainDataset
    from sista_kit.data.synthetic.export import read_manifest
    from sista_kit.data.transforms import ImageTransform
    from sista_kit.similarity import TextReportSimilarity

    master = args.rank == 0
    providers = _providers(loss)
    with_labels = any(p.source == "report_labels" for p in providers)
    text_providers = [p for p in providers if isinstance(p, TextReportSimilarity)]
    val_rows = (
        read_manifest(folder, cfg.val_split)
        if folder is not None and cfg.val_split and cfg.val_frequency
        else []
    )
    stored = False
    if shards is not None and text_providers:
        from sista_kit.train.shard_loader import stored_embeddings_match

        stored = stored_embeddings_match(shards.index, cfg.loss_kwargs)
        if not stored:
            _log.warning(
                "the shards carry no report embeddings of this provider: embedding the corpus for this run"
            )
    embed = None
    if text_providers:
        reports = ([] if stored else corpus) + [
            r["report"] for r in val_rows if str(r.get("report") or "").strip()
        ]
        embed = ReportEmbeddingTable(text_providers[0], reports, progress=cfg.progress and master)
    collate = PretrainCollate(embed, with_labels, cfg.max_length if cfg.accum_freq > 1 else None)

    transform = ImageTransform(augment=cfg.augment, image_size=image_size)
    if shards is not None:
        from sista_kit.data.shards import ShardItems
        from sista_kit.train.shard_loader import shard_loader

        items = ShardItems(tokenizer, cfg.max_length, transform, with_embeddings=stored)
        train = shard_loader(
            shards.index,
            cfg.train_split,
            cfg.batch_size,
            items,
            collate,
            cfg.workers,
            cfg.seed,
            args.world_size,
            args.rank,
            cfg.dataset_resampled,
            cfg.train_num_samples,
            device.type == "cuda",
            cfg.progress and master,
            name,
        )
    else:
        train_set = PretrainDataset(folder, tokenizer, cfg.max_length, transform, split=cfg.train_split)
        train = make_loader(
            train_set,
            cfg.batch_size,
            collate,
            cfg.workers,
            cfg.seed,
            args.world_size,
            args.rank,
            True,
            device.type == "cuda",
            cfg.progress and master,
            name,
        )
    data = {"train": train}
    if val_rows and master:
        val_set = PretrainDataset(
            folder, tokenizer, cfg.max_length, ImageTransform(image_size=image_size), split=cfg.val_split
        )
        if cfg.val_samples:
            val_set = Subset(val_set, range(min(cfg.val_samples, len(val_set))))
        data["val"] = eval_loader(val_set, cfg.batch_size, collate, cfg.workers)

    heldout = None
    if val_rows and master:
        heldout = HeldoutRetrieval(
            folder, tokenizer, cfg.val_split, cfg.val_samples, cfg.max_length, image_size, cfg.batch_size
        )

    return data, heldout


def pretrain(config: PretrainConfig | dict[str, Any]) -> Path:
    """Pretrain a CLIP model with the configured loss; returns the final checkpoint folder.

    Run under ``torchrun --nproc_per_node N`` for data parallel training (gloo on CPU, nccl on CUDA);
    the run folder is ``<logs>/<name>`` with ``out.log``, ``train.csv``, ``val.csv``, ``tokenizer/``
    and ``checkpoints/epoch_<n>/`` (``model.safetensors``, ``config.json``, ``train_state.pt``).
    """
    import open_clip_train.distributed as ocd
    from open_clip_train.scheduler import const_lr, cosine_lr
    from open_clip_train.train import evaluate, train_one_epoch

    from sista_kit.data.synthetic.export import read_manifest
    from sista_kit.models.clip import build_model
    from sista_kit.models.configs import model_config

    cfg = config if isinstance(config, PretrainConfig) else PretrainConfig.from_dict(dict(config))
    args = _open_clip_args(cfg)
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    if owns_group:
        device = ocd.init_distributed_device(args)
    else:  # called again inside an initialised process group (e.g. several runs in one torchrun job)
        device = _join_group(args)
    master = ocd.is_master(args)

    def barrier() -> None:
        if args.distributed:
            torch.distributed.barrier()

    name = cfg.name or datetime.now().strftime("%Y_%m_%d-%H_%M_%S") + f"-{cfg.loss}"
    if args.distributed and cfg.name is None:
        name = ocd.broadcast_object(args, name)
    run_dir = Path(cfg.logs) / name
    ckpt_dir = run_dir / "checkpoints"
    if master:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    barrier()
    args.checkpoint_path, args.save_logs = str(ckpt_dir), master

    with _run_logging(run_dir / "out.log" if master else None):
        # the newest intact checkpoint (older ones if newer are damaged, with a warning), or an error
        resume = resume_point(cfg.resume, ckpt_dir)
        resume_from = resume.path if resume is not None else None
        image_size = cfg.image_size or int(model_config(cfg.model)["vision_cfg"].get("image_size", 224))
        shards = None
        if cfg.dataset_type == "webdataset":
            from sista_kit.train.shard_loader import open_shards

            shards = open_shards(cfg.data, cfg.train_split)
            folder, corpus = shards.folder, shards.corpus
        else:
            folder = prepare_dataset_folder(
                cfg.data, cfg.data_dir, cfg.logs, cfg.num_samples, cfg.data_seed, image_size, master, barrier
            )
            train_rows = read_manifest(folder, cfg.train_split)
            # the reports the dataset keeps (it drops and counts empty ones, naming their study ids)
            corpus = [r["report"] for r in train_rows if str(r.get("report") or "").strip()]
        if resume_from is not None and cfg.tokenizer is None and (resume_from / "tokenizer").is_dir():
            from sista_kit.data.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(
                resume_from / "tokenizer"
            )  # the vocabulary the weights were trained with
        else:
            tokenizer = _tokenizer(cfg, run_dir, corpus, master, barrier)

        random_seed(cfg.seed, 0)  # same initial weights on every rank
        mcfg = model_config_for_tokenizer(cfg.model, tokenizer, cfg.max_length, image_size)
        model = build_model(mcfg, device=device)
        if cfg.precision in ("bf16", "fp16"):
            model = model.to(torch.bfloat16 if cfg.precision == "bf16" else torch.float16)
        if cfg.grad_checkpointing:
            model.set_grad_checkpointing(True)
        loss = build_training_loss(cfg.loss, cfg.loss_kwargs, int(mcfg["embed_dim"]), corpus).to(device)
        random_seed(cfg.seed, args.rank)
        data, heldout = _loaders(cfg, folder, tokenizer, corpus, loss, image_size, device, args, name, shards)

        optimizer = _optimizer(model, loss, cfg)
        scaler = torch.amp.GradScaler(device=device.type) if cfg.precision == "amp" else None

        start_epoch, rng = _restore(resume, model, loss, optimizer, scaler, args) if resume else (0, None)

        original = model
        if args.distributed:
            ids = [device] if device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=cfg.ddp_find_unused_parameters
            )

        steps = (data["train"].dataloader.num_batches // cfg.accum_freq) * cfg.epochs
        schedule = cosine_lr if cfg.lr_scheduler == "cosine" else const_lr
        scheduler = schedule(optimizer, cfg.lr, cfg.warmup, steps)
        logger = RunLogger(run_dir if master else None, data["train"].dataloader)
        if rng is not None:
            set_rng_state(rng)

        steps_per_epoch = data["train"].dataloader.num_batches // cfg.accum_freq

        def log_heldout(epoch: int) -> None:
            if heldout is not None:
                logger.add_scalar("heldout/step", epoch * steps_per_epoch, epoch)
                for key, value in heldout(original).items():
                    logger.add_scalar(f"heldout/{key}", value, epoch)

        logged_loss = RankMeanLosses(loss) if args.distributed else loss  # train.csv: all ranks' mean
        final = resume_from
        if start_epoch == 0:
            log_heldout(0)  # the curve's starting point: the initial weights
        for epoch in range(start_epoch, cfg.epochs):
            if hasattr(loss, "set_epoch"):
                loss.set_epoch(epoch)
            with attention_backend(device, cfg.precision):
                train_one_epoch(
                    model, data, logged_loss, epoch, optimizer, scaler, scheduler, None, args, logger
                )
            done = epoch + 1
            if "val" in data or args.distributed:
                if "val" in data:
                    evaluate(model, data, done, args, tb_writer=logger)
                    log_heldout(done)
                barrier()
            logger.flush()
            if cfg.save_frequency and (done % cfg.save_frequency == 0 or done == cfg.epochs):
                states = ocd.all_gather_object(args, rng_state()) if args.distributed else [rng_state()]
                final = ckpt_dir / f"epoch_{done}"
                if master:
                    train_state = _train_state(done, steps_per_epoch, optimizer, scaler, loss, states, args)
                    save_checkpoint(
                        original, final, original.config, train_state, _tokenizer_files(tokenizer)
                    )
                    if cfg.keep_checkpoints:
                        _prune_checkpoints(ckpt_dir, done, cfg.keep_checkpoints)
                barrier()
        logger.close()
    if args.distributed:
        torch.distributed.barrier()
        if owns_group:
            torch.distributed.destroy_process_group()
    return Path(final) if final is not None else ckpt_dir
