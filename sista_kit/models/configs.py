"""Model configs: the built-in ones, and their registration with open_clip's factory.

A sista_kit model config is an open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``)
with three additions that open_clip does not know and that are removed before it sees the config:

- ``vision_cfg.in_chans``: input channels of the timm trunk (1 for grey-scale X-rays);
- ``vision_cfg.pretrained_path``: optional local weights file for the trunk;
- ``text_cfg.hf_config``: the Hugging Face config of the text tower as a dict (a small BERT by
  default), so that no model folder is needed; ``text_cfg.hf_model_name`` may instead name a local
  folder such as BioClinicalBERT, and ``text_cfg.pretrained`` says whether to load its weights.

:func:`register_model_config` writes the open_clip part as JSON under a cache folder and registers
it with ``open_clip.add_model_config``, so ``open_clip.create_model(name, pretrained_text=False)``
builds it as well.

The cache folder (:func:`cache_dir`) is chosen, in order, by :func:`set_cache_dir`, the environment
variable ``SISTA_KIT_CACHE`` (files go to ``$SISTA_KIT_CACHE/model_configs``), or else a private
folder of this process (``tempfile.mkdtemp``, mode 0700, removed at exit): building a model writes
nothing under the home folder unless asked to. A configured folder must belong to the current user
and be writable by nobody else, or :func:`cache_dir` raises ``PermissionError`` naming it.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from sista_kit.io import write_text_atomic

__all__ = [
    "BUILTIN_CONFIGS",
    "model_config",
    "list_model_configs",
    "register_model_config",
    "cache_dir",
    "set_cache_dir",
    "CACHE_ENV",
]

#: Environment variable naming the model-config cache root.
CACHE_ENV = "SISTA_KIT_CACHE"
_configured_cache: Path | None = None
_private_cache: Path | None = None

_TINY_BERT: dict[str, Any] = {
    "model_type": "bert",
    "vocab_size": 4096,
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 512,
    "max_position_embeddings": 128,
    "type_vocab_size": 1,
    # No dropout: a 2-layer tower trained from scratch for a few hundred steps underfits, and dropout
    # slowed it (measured on the embedded data, docs/benchmark).
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "pad_token_id": 0,
}

_BERT_BASE: dict[str, Any] = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "pad_token_id": 0,
}


def _text_cfg(hf_config: dict[str, Any], context_length: int, pooler: str) -> dict[str, Any]:
    return {
        "hf_model_name": None,
        "hf_config": copy.deepcopy(hf_config),
        "hf_proj_type": "linear",
        "hf_pooler_type": pooler,
        "context_length": context_length,
        "pretrained": False,
    }


def _cpu_config(vision: str, text_layers: int | None = None) -> dict[str, Any]:
    """A CPU-sized config: one grey-scale vision trunk at 128 px and the tiny BERT (``text_layers``
    layers; default: its own), 128-d embeddings."""
    text = _text_cfg(_TINY_BERT, 128, "mean_pooler")
    if text_layers is not None:
        text["hf_config"]["num_hidden_layers"] = text_layers
    return {
        "embed_dim": 128,
        "vision_cfg": {
            "timm_model_name": vision,
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "linear",
            "image_size": 128,
            "in_chans": 1,
        },
        "text_cfg": text,
    }


#: Built-in configs. ``sista-tiny`` trains on a laptop CPU, ``sista-mini`` has a narrower vision tower,
#: ``sista-micro`` (3 vision blocks, one text layer) is the CPU benchmark's; ``sista-paper`` is the
#: paper scale.
#: The tiny towers pool by averaging tokens: trained from scratch for a few epochs, [CLS]-pooled
#: global embeddings of this size stay collapsed (the contrastive loss sits at log B), mean-pooled
#: ones do not.
BUILTIN_CONFIGS: dict[str, dict[str, Any]] = {
    "sista-tiny": _cpu_config("sista_vit_tiny"),
    "sista-mini": _cpu_config("sista_vit_mini"),
    "sista-micro": _cpu_config("sista_vit_micro", text_layers=1),
    "sista-tiny-resnet": _cpu_config("sista_resnet18"),
    "sista-paper": {
        "embed_dim": 512,
        "vision_cfg": {
            "timm_model_name": "sista_vit_base_patch16_224",
            "timm_model_pretrained": False,
            "timm_pool": "token",
            "timm_proj": "linear",
            "image_size": 224,
            "in_chans": 3,
        },
        "text_cfg": _text_cfg(_BERT_BASE, 128, "cls_last_hidden_state_pooler"),
    },
}

_SISTA_VISION_KEYS = ("in_chans", "pretrained_path")
_SISTA_TEXT_KEYS = ("hf_config", "pretrained")


def list_model_configs() -> list[str]:
    """Names of the built-in model configs."""
    return sorted(BUILTIN_CONFIGS)


def model_config(name_or_path: str | os.PathLike | dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A model config: a built-in name, a JSON file, or a dict (deep-copied).

    ``overrides`` are merged one level deep:
    ``model_config("sista-tiny", vision_cfg={"image_size": 96})``.
    """
    if isinstance(name_or_path, dict):
        cfg = copy.deepcopy(name_or_path)
    elif str(name_or_path) in BUILTIN_CONFIGS:
        cfg = copy.deepcopy(BUILTIN_CONFIGS[str(name_or_path)])
    elif Path(name_or_path).is_file():
        cfg = json.loads(Path(name_or_path).read_text())
    else:
        raise ValueError(
            f"unknown model config {name_or_path!r}: "
            f"not a built-in ({', '.join(BUILTIN_CONFIGS)}) nor a JSON file"
        )
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in cfg]
    if missing:
        raise ValueError(f"model config lacks {', '.join(missing)}")
    return cfg


def set_cache_dir(path: str | os.PathLike | None) -> None:
    """Put generated config files under ``path/model_configs`` (None: back to the default order)."""
    global _configured_cache
    _configured_cache = None if path is None else Path(path).expanduser()


def _check_private(path: Path) -> None:
    """The folder must be ours and writable by nobody else (no one can plant configs in it)."""
    info = path.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise PermissionError(f"model-config cache {path} belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(
            f"model-config cache {path} is writable by group or others (mode {stat.filemode(info.st_mode)}); "
            f"run `chmod go-w {path}` or choose another folder with {CACHE_ENV}"
        )


def _remove_private_cache() -> None:
    if _private_cache is not None:
        shutil.rmtree(_private_cache, ignore_errors=True)


def cache_dir() -> Path:
    """Where generated open_clip / Hugging Face config files go (see the module docstring).

    Raises:
        PermissionError: a configured folder belongs to another user or is group / world writable.
    """
    global _private_cache
    root = _configured_cache or os.environ.get(CACHE_ENV)
    if root:
        path = Path(root).expanduser() / "model_configs"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        _check_private(path)
        return path
    if _private_cache is None or not _private_cache.is_dir():
        _private_cache = Path(tempfile.mkdtemp(prefix="sista_kit-model-configs-"))
        atexit.register(_remove_private_cache)
    return _private_cache


def _atomic_write(path: Path, text: str) -> None:
    if path.is_file() and path.read_text() == text:
        return
    write_text_atomic(path, text)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def split_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a sista_kit config into (open_clip config, sista_kit extras)."""
    oc = copy.deepcopy(cfg)
    oc.pop("name", None)
    vision, text = oc["vision_cfg"], oc["text_cfg"]
    extras = {
        "vision": {k: vision.pop(k) for k in _SISTA_VISION_KEYS if k in vision},
        "text": {k: text.pop(k) for k in _SISTA_TEXT_KEYS if k in text},
    }
    return oc, extras


def register_model_config(cfg: dict[str, Any], name: str | None = None) -> str:
    """Register a sista_kit model config with open_clip; returns the open_clip model name.

    The Hugging Face text config (``text_cfg.hf_config``) is written as ``config.json`` in a folder
    that ``text_cfg.hf_model_name`` then points to; a local ``hf_model_name`` folder is used as is.
    """
    import open_clip

    oc, extras = split_config(cfg)
    text = oc["text_cfg"]
    hf_config = extras["text"].get("hf_config")
    folder = cache_dir()
    if hf_config is not None and not (text.get("hf_model_name") and extras["text"].get("pretrained")):
        if "model_type" not in hf_config:
            raise ValueError("text_cfg.hf_config needs a 'model_type' (e.g. 'bert')")
        hf_dir = folder / "hf" / _digest(hf_config)
        _atomic_write(hf_dir / "config.json", json.dumps(hf_config, indent=2, sort_keys=True))
        text["hf_model_name"] = str(hf_dir)
    name_hf = text.get("hf_model_name")
    if not name_hf:
        raise ValueError("text_cfg needs hf_config or hf_model_name (a local Hugging Face model folder)")
    if not Path(name_hf).is_dir():
        raise FileNotFoundError(
            f"text model {name_hf!r} is not a local folder; sista_kit never downloads models. Give a local "
            "folder (e.g. BioClinicalBERT saved with save_pretrained) or a text_cfg.hf_config dict"
        )
    reg_name = f"{name or cfg.get('name', 'sista')}-{_digest(oc)}"
    file = folder / f"{reg_name}.json"
    _atomic_write(file, json.dumps(oc, indent=2, sort_keys=True))
    if reg_name not in open_clip.list_models():
        open_clip.add_model_config(file)
    return reg_name
