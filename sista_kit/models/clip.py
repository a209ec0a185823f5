"""The CLIP model: open_clip's towers (timm vision, Hugging Face text) with token-level outputs.

``build_model(config)`` registers the config with open_clip, builds it with
``open_clip.create_model`` (random init; no hub access) and wraps the towers in :class:`SistaCLIP`,
whose forward returns the dict of docs/contracts.md section 2. The state-dict keys are open_clip's
(``visual.trunk.*``, ``visual.head.*``, ``text.transformer.*``, ``text.proj.*``, ``logit_scale``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sista_kit.models.configs import model_config, register_model_config, split_config
from sista_kit.models.spec import VisionSpec, is_vit
from sista_kit.models.text_batch import TextBatch
from sista_kit.models.vision import create_vision_trunk, load_trunk_weights

__all__ = ["SistaCLIP", "build_model", "length_groups", "words_from_pieces"]

_log = logging.getLogger(__name__)


def words_from_pieces(
    pieces: Tensor, word_ids: Tensor, num_words: int, reduce: str = "mean"
) -> tuple[Tensor, Tensor]:
    """Group word pieces into words with one scatter (no loop over batch or tokens).

    Args:
        pieces: (B, T) or (B, T, D) values per word piece.
        word_ids: (B, T) word index per piece, -1 for special / padding pieces.
        num_words: number of word slots L (>= the largest word index + 1).
        reduce: ``mean`` (average the pieces of a word) or ``sum``.

    Returns:
        ``(words, mask)``: (B, L[, D]) and the (B, L) bool mask of slots that received a piece.
    """
    squeeze = pieces.ndim == 2
    values = pieces.unsqueeze(-1) if squeeze else pieces
    valid = word_ids >= 0
    index = word_ids.clamp(min=0)
    weight = valid.to(values.dtype)
    B, _, D = values.shape
    sums = values.new_zeros(B, num_words, D).scatter_add_(
        1, index.unsqueeze(-1).expand(-1, -1, D), values * weight.unsqueeze(-1)
    )
    counts = values.new_zeros(B, num_words).scatter_add_(1, index, weight)
    mask = counts > 0
    if reduce == "mean":
        sums = sums / counts.clamp(min=1).unsqueeze(-1)
    elif reduce != "sum":
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    return (sums.squeeze(-1) if squeeze else sums), mask


class SistaCLIP(nn.Module):
    """CLIP with token outputs for SISTA, GLoRIA, MGCA and the other losses.

    Holds open_clip's ``visual`` (a ``TimmModel``: ``trunk`` + projection ``head``) and ``text`` (an
    ``HFTextEncoder``: ``transformer`` + ``pooler`` + ``proj``) and the learned ``logit_scale``.
    Patch and word tokens go through the same projections as the global embeddings, so the model has
    no parameter that a global-only loss leaves unused.
    """

    def __init__(self, clip: nn.Module, config: dict[str, Any]):
        super().__init__()
        self.visual = clip.visual
        self.text = clip.text
        self.logit_scale = clip.logit_scale
        self.logit_bias = getattr(clip, "logit_bias", None)
        self.config = copy.deepcopy(config)
        self.output_dict = True

    # open_clip compatibility ---------------------------------------------------------------
    def lock_image_tower(self, unlocked_groups: int = 0, freeze_bn_stats: bool = False) -> None:
        self.visual.lock(unlocked_groups=unlocked_groups, freeze_bn_stats=freeze_bn_stats)

    def lock_text_tower(self, unlocked_layers: int = 0, freeze_layer_norm: bool = True) -> None:
        self.text.lock(unlocked_layers, freeze_layer_norm)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)
        self.text.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"logit_scale"}

    # vision --------------------------------------------------------------------------------
    def _image_tokens(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(pooled trunk features (B, W), patch tokens (B, P, W), [CLS]->patch attention (B, P))."""
        trunk = self.visual.trunk
        if image.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(image.shape)}")
        chans = _trunk_in_chans(trunk)
        if image.shape[1] == 1 and chans not in (None, 1):  # grey-scale radiographs into an RGB trunk
            image = image.expand(-1, chans, -1, -1)
        if is_vit(trunk):
            prefix_n = trunk.num_prefix_tokens
            depth = len(trunk.blocks)
            if depth >= 2:
                final, inter = trunk.forward_intermediates(
                    image, indices=[depth - 2], return_prefix_tokens=True, norm=False, output_fmt="NLC"
                )
                spatial, prefix = inter[0]
                attention = _vit_cls_attention(trunk.blocks[-1], torch.cat([prefix, spatial], 1), prefix_n)
            else:
                final = trunk.forward_features(image)
                attention = None
            pooled = trunk.forward_head(final)
            patches = final[:, prefix_n:]
            if attention is None:
                attention = patches.new_full(patches.shape[:2], 1.0 / patches.shape[1])
        else:
            feats = trunk.forward_features(image)
            pooled = trunk.forward_head(feats)
            patches = feats.flatten(2).transpose(1, 2)
            attention = patches.new_full(patches.shape[:2], 1.0 / patches.shape[1])
        return pooled, patches, attention

    def encode_image(self, image: Tensor, normalize: bool = False) -> Tensor:
        """Global image embedding (B, E)."""
        features = self.visual(image)
        return F.normalize(features, dim=-1) if normalize else features

    # text ----------------------------------------------------------------------------------
    #: The text tower runs reports sorted by length in this many groups, each trimmed to its own
    #: longest report, when the mask is on the CPU (lengths known without a device sync) and that
    #: saves >= 10 % of the padded positions: real tokens attend to real tokens only, so the outputs
    #: are the same (to float rounding) as one padded batch. 1 turns it off.
    text_groups: int = 3

    def _text_tower(self, input_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(pooled (B, H), last hidden state (B, T, H), [CLS] attention over pieces (B, T))."""
        hf = self.text.transformer
        out = hf(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        return (
            self.text.pooler(out, mask),
            out.last_hidden_state,
            _bert_cls_attention(hf, out.hidden_states, mask),
        )

    def _grouped_text_tower(self, input_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        groups = length_groups(mask, self.text_groups)
        if groups is None:
            return self._text_tower(input_ids, mask)
        parts = [self._text_tower(input_ids[idx, :t], mask[idx, :t]) for idx, t in groups]
        order = torch.cat([idx for idx, _ in groups]).argsort()
        width = mask.shape[1]
        pooled = torch.cat([p[0] for p in parts])[order]
        hidden = torch.cat([F.pad(p[1], (0, 0, 0, width - p[1].shape[1])) for p in parts])[order]
        attention = torch.cat([F.pad(p[2], (0, width - p[2].shape[1])) for p in parts])[order]
        return pooled, hidden, attention

    def _text_outputs(self, texts: TextBatch) -> dict[str, Tensor]:
        pooled, hidden, piece_attention = self._grouped_text_tower(texts.input_ids, texts.attention_mask)
        words, word_mask = words_from_pieces(hidden, texts.word_ids, texts.num_words, "mean")
        word_attention, _ = words_from_pieces(piece_attention, texts.word_ids, texts.num_words, "sum")
        return {
            "text_features": self.text.proj(pooled),
            "text_tokens": self.text.proj(words),
            "text_mask": word_mask,
            "text_attention": word_attention,
        }

    def encode_text(self, texts: TextBatch, normalize: bool = False) -> Tensor:
        """Global report embedding (B, E)."""
        features = self._text_outputs(texts)["text_features"]
        return F.normalize(features, dim=-1) if normalize else features

    # forward -------------------------------------------------------------------------------
    def forward(self, image: Tensor | None = None, text: TextBatch | None = None) -> dict[str, Tensor]:
        """Global and token embeddings of a batch (docs/contracts.md section 2).

        Args:
            image: (B, C, H, W) normalised images, or None.
            text: a :class:`TextBatch`, or None.

        Returns:
            ``image_features``, ``text_features`` (L2-normalised), ``logit_scale`` (exponentiated,
            <= 100), ``image_tokens`` (B, P, E), ``text_tokens`` (B, L, E), ``text_mask`` (B, L),
            ``image_attention`` (B, P), ``text_attention`` (B, L), and ``report_embeddings`` /
            ``report_labels`` when the batch carries them. The attention maps are computed without
            gradient (they weight token losses; MGCA uses them detached).
        """
        out: dict[str, Tensor] = {}
        if image is not None:
            pooled, patches, attention = self._image_tokens(image)
            out["image_features"] = F.normalize(self.visual.head(pooled), dim=-1)
            out["image_tokens"] = self.visual.head(patches)
            out["image_attention"] = attention
        if text is not None:
            if not isinstance(text, TextBatch):
                raise TypeError(
                    f"text must be a TextBatch (input_ids, attention_mask, word_ids), got {type(text)}"
                )
            if image is not None and len(text) != image.shape[0]:
                raise ValueError(f"{image.shape[0]} images but {len(text)} reports in the batch")
            text_out = self._text_outputs(text)
            text_out["text_features"] = F.normalize(text_out["text_features"], dim=-1)
            out.update(text_out)
            if text.report_embeddings is not None:
                out["report_embeddings"] = text.report_embeddings
            if text.report_labels is not None:
                out["report_labels"] = text.report_labels
        out["logit_scale"] = self.logit_scale.exp().clamp(max=100.0)
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias
        return out


def length_groups(mask: Tensor, groups: int, min_saving: float = 0.1) -> list[tuple[Tensor, int]] | None:
    """Split a batch by report length: [(row indices, longest length)] of ``groups`` length-sorted
    groups, or None where grouping would not save ``min_saving`` of the padded positions (or the mask
    is on an accelerator, where reading the lengths would wait for the device)."""
    if groups <= 1 or mask.device.type != "cpu" or mask.shape[0] < 2 * groups:
        return None
    lengths = mask.sum(1)
    order = lengths.argsort(stable=True)
    out = [(idx, max(int(lengths[idx].max()), 1)) for idx in order.chunk(groups)]
    padded = sum(idx.numel() * t for idx, t in out)
    if padded > (1.0 - min_saving) * mask.numel():
        return None
    return out


@torch.no_grad()
def _vit_cls_attention(block: nn.Module, x: Tensor, prefix_n: int) -> Tensor:
    """Heads-averaged softmax attention of the [CLS] query over patch keys in a timm ViT block.

    ``x`` is the block input (B, N, W). Only the [CLS] query row and the keys are projected.
    """
    attn = block.attn
    h = block.norm1(x)
    width = attn.num_heads * attn.head_dim
    weight, bias = attn.qkv.weight, attn.qkv.bias
    q = F.linear(h[:, :1], weight[:width], None if bias is None else bias[:width])
    k = F.linear(h, weight[width : 2 * width], None if bias is None else bias[width : 2 * width])
    B, N, _ = h.shape
    q = attn.q_norm(q.view(B, 1, attn.num_heads, attn.head_dim).transpose(1, 2))
    k = attn.k_norm(k.view(B, N, attn.num_heads, attn.head_dim).transpose(1, 2))
    scores = (q @ k.transpose(-2, -1)).squeeze(2) * attn.scale  # (B, H, N)
    probs = scores.float().softmax(dim=-1).mean(dim=1)
    return probs[:, prefix_n:].to(x.dtype)


@torch.no_grad()
def _bert_cls_attention(hf: nn.Module, hidden_states: tuple[Tensor, ...] | None, mask: Tensor) -> Tensor:
    """Heads-averaged last-layer [CLS] attention over word pieces (B, T) for BERT-like encoders."""
    layers = getattr(getattr(hf, "encoder", None), "layer", None)
    self_attn = getattr(getattr(layers[-1], "attention", None), "self", None) if layers is not None else None
    if hidden_states is None or self_attn is None or not hasattr(self_attn, "query"):
        weights = mask.float()
        return weights / weights.sum(-1, keepdim=True).clamp(min=1)
    h = hidden_states[-2]
    heads, head_dim = self_attn.num_attention_heads, self_attn.attention_head_size
    B, T, _ = h.shape
    q = self_attn.query(h[:, :1]).view(B, 1, heads, head_dim).transpose(1, 2)
    k = self_attn.key(h).view(B, T, heads, head_dim).transpose(1, 2)
    scores = (q @ k.transpose(-2, -1)).squeeze(2).float() / math.sqrt(head_dim)  # (B, H, T)
    scores = scores.masked_fill(~mask.bool().unsqueeze(1), float("-inf"))
    return scores.softmax(dim=-1).mean(dim=1).to(h.dtype)


def _resolve_text_config(cfg: dict[str, Any]) -> None:
    """Fill ``text_cfg.hf_config`` from a local model folder so that the config is self-contained."""
    text = cfg["text_cfg"]
    if text.get("hf_config") is None:
        folder = text.get("hf_model_name")
        if not folder or not Path(folder).is_dir():
            raise FileNotFoundError(
                f"text_cfg.hf_model_name {folder!r} is not a local folder and no text_cfg.hf_config is given"
            )
        cfg_file = Path(folder) / "config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{cfg_file} not found (a Hugging Face model folder needs config.json)")
        text["hf_config"] = json.loads(cfg_file.read_text())


def build_model(
    config: str | dict[str, Any] = "sista-tiny",
    load_pretrained: bool = True,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> SistaCLIP:
    """Build the CLIP model through ``open_clip.create_model`` from a sista_kit model config.

    Args:
        config: built-in name (``sista-tiny``, ``sista-tiny-resnet``, ``sista-paper``), JSON file or dict.
        load_pretrained: load local tower weights named by the config (``vision_cfg.pretrained_path``,
            ``text_cfg.pretrained`` with a local ``hf_model_name`` folder). Checkpoint loading turns this off.
        device: where the model goes.
        **overrides: merged into the config one level deep (see :func:`model_config`).

    Returns:
        A :class:`SistaCLIP` whose ``config`` is self-contained (the text tower's HF config included).
    """
    import open_clip

    cfg = model_config(config, **overrides)
    if isinstance(config, str) and "name" not in cfg:
        cfg["name"] = Path(config).stem
    _resolve_text_config(cfg)
    text_pretrained = bool(load_pretrained and cfg["text_cfg"].get("pretrained"))
    if cfg["text_cfg"].get("pretrained") and not load_pretrained:
        build_cfg = copy.deepcopy(cfg)
        build_cfg["text_cfg"]["pretrained"] = False
    else:
        build_cfg = cfg
    name = register_model_config(build_cfg)
    with _quiet_random_init_warning():
        clip = open_clip.create_model(
            name,
            pretrained=None,
            pretrained_image=False,
            pretrained_text=text_pretrained,
            output_dict=True,
            device="cpu",
        )
    _, extras = split_config(cfg)
    vision = cfg["vision_cfg"]
    trunk = clip.visual.trunk
    spec = VisionSpec.from_config(cfg)
    if _trunk_in_chans(trunk) != spec.in_chans or _trunk_image_size(trunk) not in (None, spec.image_size):
        new = create_vision_trunk(*spec)
        pool = vision.get("timm_pool", "avg")
        new.reset_classifier(0, **({"global_pool": pool} if pool else {}))
        clip.visual.trunk = new
    path = extras["vision"].get("pretrained_path")
    if load_pretrained and path:
        load_trunk_weights(clip.visual.trunk, path)
    model = SistaCLIP(clip, cfg)
    return model.to(device)


class _DropRandomInitNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()


@contextmanager
def _quiet_random_init_warning():
    """open_clip warns that no pretrained weights were loaded: random init is what is asked for here."""
    flt = _DropRandomInitNotice()
    root = logging.getLogger()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _trunk_in_chans(trunk: nn.Module) -> int | None:
    conv = getattr(getattr(trunk, "patch_embed", None), "proj", None) or getattr(trunk, "conv1", None)
    if isinstance(conv, nn.Sequential):
        conv = conv[0]
    return getattr(conv, "in_channels", None)


def _trunk_image_size(trunk: nn.Module) -> int | None:
    size = getattr(getattr(trunk, "patch_embed", None), "img_size", None)
    if size is None:
        return None
    return int(size[0] if isinstance(size, (list, tuple)) else size)
