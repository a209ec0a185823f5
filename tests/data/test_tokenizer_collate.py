import numpy as np
import pytest
import torch
from tokenizers.pre_tokenizers import BertPreTokenizer

from sista_kit.data import PretrainDataset, collate_pretrain, encode_reports, load_tokenizer
from sista_kit.data.transforms import ImageTransform


def test_tokenizer_round_trip(tokenizer, tmp_path, small_samples):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    auto = AutoTokenizer.from_pretrained(str(tmp_path))
    text = small_samples[0].report
    ids = again(text)["input_ids"]
    assert ids == auto(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids  # trained on this corpus
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == text.lower().replace(" ", "")
    for tok in ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"):
        assert tok in tokenizer.get_vocab()


def test_load_tokenizer_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path)


def test_word_ids_match_pretokenizer(tokenizer, small_samples):
    reports = [s.report for s in small_samples[:16]] + ["Tiny pneumothorax, right-sided; zzqx unseenword!"]
    enc = encode_reports(tokenizer, reports, max_length=64)
    for k in ("input_ids", "attention_mask", "word_ids"):
        assert enc[k].dtype == torch.int64 and enc[k].shape == enc["input_ids"].shape
    ref = tokenizer(reports, max_length=64, truncation=True, padding="longest")
    pre = BertPreTokenizer()
    for i, r in enumerate(reports):
        expect = [-1 if w is None else w for w in ref.word_ids(i)]
        assert enc["word_ids"][i].tolist() == expect
        n_words = len(pre.pre_tokenize_str(r.lower()))
        assert enc["word_ids"][i].max().item() < n_words
    # special and pad positions are -1, real pieces >= 0
    special = (enc["input_ids"] == tokenizer.cls_token_id) | (enc["input_ids"] == tokenizer.sep_token_id)
    assert (enc["word_ids"][special | (enc["attention_mask"] == 0)] == -1).all()


def test_dataset_and_collate(tokenizer, small_samples):
    ds = PretrainDataset(small_samples[:6], tokenizer, max_length=96, return_masks=True)
    batch = collate_pretrain([ds[i] for i in range(6)])
    b, t = batch["input_ids"].shape
    assert b == 6 and t <= 96
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (6, 1, 64, 64)
    for k in ("input_ids", "attention_mask", "word_ids"):
        assert batch[k].dtype == torch.int64 and batch[k].shape == (6, t)
    assert batch["attention_mask"][:, -1].any()  # trimmed to the longest
    assert batch["labels"].dtype == torch.float32 and batch["labels"].shape == (6, 7)
    assert isinstance(batch["report"], list) and isinstance(batch["finding_key"][0], str)
    assert batch["sample_id"] == [s.sample_id for s in small_samples[:6]]
    assert batch["masks"].shape == (6, 7, 64, 64) and batch["masks"].dtype == torch.bool
    plain = collate_pretrain([PretrainDataset(small_samples[:2], tokenizer, 32)[i] for i in range(2)])
    assert set(plain) == {
        "image",
        "input_ids",
        "attention_mask",
        "word_ids",
        "report",
        "labels",
        "finding_key",
        "sample_id",
    }
    # span words of the ground truth fall inside the word map
    w = batch["word_ids"][0]
    for _k, a, _b in small_samples[0].spans:
        if a < int(w.max()):
            assert (w == a).any()


def test_dataset_from_folder(tmp_path, tokenizer):
    from sista_kit.data import build_synthetic

    root = build_synthetic(tmp_path / "d", 24, seed=0, image_size=32, workers=1, progress=False)
    ds = PretrainDataset(root, tokenizer, max_length=48, split="pretrain")
    assert 0 < len(ds) < 24
    item = ds[0]
    assert item["image"].shape == (1, 32, 32)
    with pytest.raises(ValueError):
        PretrainDataset(root, tokenizer, split="bogus")


def test_folder_items_equal_per_sample_items(tmp_path, tokenizer):
    """Items from the dataset's token table (and, without masks, the image read alone) equal items
    built from each full sample; the findings mask is read only when masks are asked for."""
    from sista_kit.data import build_synthetic
    from sista_kit.data.datasets import pretrain_item
    from sista_kit.data.folder import read_manifest

    root = build_synthetic(tmp_path / "d", 30, seed=1, image_size=32, workers=1, progress=False)
    plain = PretrainDataset(root, tokenizer, max_length=40, split=None)
    masked = PretrainDataset(root, tokenizer, max_length=40, split=None, return_masks=True)
    assert len(plain) == 30
    for i in range(len(plain)):
        want = pretrain_item(plain.sample(i), tokenizer, 40, plain.transform, plain.pad_id)
        for got in (plain[i], masked[i]):
            for key, value in want.items():
                if isinstance(value, torch.Tensor):
                    assert got[key].dtype == value.dtype and torch.equal(got[key], value), (i, key)
                else:
                    assert got[key] == value, (i, key)
        assert masked[i]["masks"].shape[1:] == (32, 32)
    for row in read_manifest(root):
        (root / row["findings_mask"]).unlink()
    assert plain[0]["image"].shape == (1, 32, 32)
    with pytest.raises(FileNotFoundError, match="missing file"):
        masked[0]


def test_transform():
    img = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    x = ImageTransform()(img)
    assert x.shape == (1, 64, 64) and x.dtype == torch.float32
    assert torch.allclose(x, (torch.from_numpy(img).float()[None] / 255 - 0.5) / 0.25)
    torch.manual_seed(0)
    y = ImageTransform(augment=True, image_size=32)(img)
    assert y.shape == (1, 32, 32) and torch.isfinite(y).all()
    with pytest.raises(ValueError):
        ImageTransform()(np.zeros((2, 3, 4, 5), dtype=np.uint8))


def test_training_is_deterministic_across_processes(tmp_path):
    """Two separate processes train the same vocabulary from the same corpus."""
    import json
    import subprocess
    import sys

    from sista_kit.data import generate

    corpus = [s.report for s in generate(60, seed=1, image_size=32)]
    (tmp_path / "corpus.json").write_text(json.dumps(corpus))
    script = (
        "import json, sys; from sista_kit.data.tokenizer import train_tokenizer; "
        "c = json.load(open(sys.argv[1])); t = train_tokenizer(c, sys.argv[2], vocab_size=300); "
        "print(json.dumps(sorted(t.get_vocab().items())))"
    )
    vocabs = [
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "corpus.json"), str(tmp_path / f"t{i}")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for i in range(2)
    ]
    assert vocabs[0] == vocabs[1] and len(json.loads(vocabs[0])) > 100
