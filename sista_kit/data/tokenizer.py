"""WordPiece tokenizer trained offline on the report corpus, loading of local tokenizers, and batch
encoding with a word index per piece (``word_ids``) for word-level alignment."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_tokenizer(
    corpus: list[str], out_dir: str | os.PathLike, vocab_size: int = 4000, min_frequency: int = 1
):
    """Train a lower-casing BERT-style WordPiece tokenizer on ``corpus`` and save it to ``out_dir``.

    Returns a ``PreTrainedTokenizerFast`` (``BertTokenizerFast``) that ``AutoTokenizer`` reloads from
    ``out_dir``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    if not corpus:
        raise ValueError("train_tokenizer needs a non-empty corpus")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # The WordPiece trainer numbers "##x" pieces in hash-map order, and those ids break ties between
    # merges, so two trainings on one corpus can differ. Listing every continuation piece up front, in
    # sorted order, fixes their ids and makes the vocabulary a function of the corpus alone.
    continuations = sorted(
        {
            "##" + ch
            for text in corpus
            for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))
            for ch in word[1:]
        }
    )
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS) + continuations,
        continuing_subword_prefix="##",
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    # transformers 5 ignores vocab_file=: build from the trained vocabulary itself.
    fast = BertTokenizerFast(vocab=tok.get_vocab(), do_lower_case=True)
    fast.backend_tokenizer.post_processor = tok.post_processor
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return fast


def load_tokenizer(path: str | os.PathLike):
    """Load a Hugging Face tokenizer from a local folder (never from the hub)."""
    from transformers import AutoTokenizer

    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"tokenizer folder {p} does not exist (build one with train_tokenizer)")
    if not any((p / f).exists() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise FileNotFoundError(
            f"{p} holds no tokenizer files (tokenizer.json / vocab.txt / tokenizer_config.json)"
        )
    tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    if not getattr(tok, "is_fast", False):
        raise TypeError(
            f"the tokenizer in {p} is not a fast tokenizer; word_ids need a fast (Rust) tokenizer"
        )
    return tok


def _continuation_table(tokenizer) -> torch.Tensor | None:
    """Bool (V,) True for WordPiece continuation pieces (``##...``), or None if not a WordPiece model."""
    cache = getattr(tokenizer, "_sista_continuation", None)
    if cache is not None:
        return cache
    model = tokenizer.backend_tokenizer.model
    prefix = getattr(model, "continuing_subword_prefix", None)
    if type(model).__name__ != "WordPiece" or not prefix:
        return None
    vocab = tokenizer.get_vocab()
    table = torch.zeros(max(vocab.values()) + 1, dtype=torch.bool)
    ids = [i for t, i in vocab.items() if t.startswith(prefix)]
    table[torch.as_tensor(ids, dtype=torch.long)] = True
    tokenizer._sista_continuation = table
    return table


def encode_reports(tokenizer, reports: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Tokenise a batch of reports; returns int64 (B, T) ``input_ids``, ``attention_mask``, ``word_ids``.

    ``word_ids`` is the 0-based index of the word (BERT pre-tokenizer split) each piece belongs to,
    -1 for special and padding tokens. For WordPiece tokenizers it is computed from a precomputed
    continuation-piece table with a cumulative sum; other fast tokenizers use their own word map.
    """
    if isinstance(reports, str):
        raise TypeError("encode_reports takes a list of reports, not a single string")
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3, got {max_length}")
    enc = tokenizer(
        list(reports),
        max_length=max_length,
        truncation=True,
        padding="longest",
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    ids = enc["input_ids"].long()
    attn = enc["attention_mask"].long()
    real = (attn == 1) & (enc["special_tokens_mask"] == 0)
    table = _continuation_table(tokenizer)
    if table is not None:
        start = real & ~table[ids.clamp(0, table.numel() - 1)]
        word = torch.cumsum(start.long(), dim=1) - 1
        word_ids = torch.where(real, word, torch.full_like(word, -1))
    else:  # byte-level BPE or unigram: the backend's own per-token word map
        w = np.array([[-1 if x is None else x for x in e.word_ids] for e in enc.encodings], dtype=np.int64)
        word_ids = torch.from_numpy(w)
    return {"input_ids": ids, "attention_mask": attn, "word_ids": word_ids}
