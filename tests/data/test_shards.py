"""Webdataset shards of a dataset folder: the writer, the index, the samples, and pretraining from them.

Fast tests check the format; slow ones check that an epoch from the shards holds the same samples as an
epoch from the folder, that two ranks read disjoint samples, and a pretraining run on shards.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sista_kit.data.folder import read_manifest, sample_from_row
from sista_kit.data.shards import (
    ShardItems,
    read_shard_index,
    sample_from_shard,
    shard_corpus,
    shard_urls,
    write_shards,
)

N_STUDIES, SIZE, PER_SHARD = 80, 32, 7


def _fake_embed(reports):
    """A deterministic stand-in for a text provider's ``embed``: (n, 3) from the report text."""
    return torch.tensor([[len(r), r.count(" "), 1.0] for r in reports], dtype=torch.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    from sista_kit.data.synthetic import write_dataset

    return write_dataset(
        tmp_path_factory.mktemp("shards") / "data", N_STUDIES, seed=4, image_size=SIZE, progress=False
    )


def _write(folder: Path) -> Path:
    """Shards of the pretraining and validation splits, with the stand-in embeddings."""
    options = dict(max_count=PER_SHARD, report_embed=_fake_embed, embeddings={"similarity": "fake"})
    return write_shards(folder, splits=("pretrain", "val"), progress=False, **options)


@pytest.fixture(scope="module")
def shards(folder) -> Path:
    return _write(folder)


def _raw_samples(url: str) -> list[dict]:
    """The samples of one shard file, grouped by key (bytes per extension)."""
    groups: dict[str, dict] = {}
    with tarfile.open(url) as tar:
        for member in tar.getmembers():
            key, _, ext = member.name.partition(".")
            groups.setdefault(key, {"__key__": key, "__url__": url})[ext] = tar.extractfile(member).read()
    return list(groups.values())


def test_index_counts_and_sizes(folder, shards):
    index = read_shard_index(folder)  # found through the dataset folder's shards/
    assert Path(index["root"]) == shards
    rows = read_manifest(folder, "pretrain")
    entry = index["splits"]["pretrain"]
    assert entry["num_samples"] == len(rows) == sum(s["count"] for s in entry["shards"])
    assert max(s["count"] for s in entry["shards"]) == PER_SHARD
    sizes = json.loads((shards / "pretrain" / "sizes.json").read_text())
    assert sizes == {Path(s["file"]).name: s["count"] for s in entry["shards"]}
    assert entry["embedding_dim"] == 3 and index["image_size"] == SIZE
    assert shard_corpus(index, "pretrain") == [r["report"] for r in rows]


def test_samples_match_the_folder(folder, shards):
    index = read_shard_index(shards)
    rows = read_manifest(folder, "pretrain")
    raw = [s for url in shard_urls(index, "pretrain") for s in _raw_samples(url)]
    assert len(raw) == len(rows)
    for row, sample in zip(rows, raw, strict=True):
        got, emb = sample_from_shard(sample)
        want = sample_from_row(folder, row)
        assert got.sample_id == want.sample_id and got.report == want.report
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.labels, want.labels)
        assert got.finding_key == want.finding_key and got.boxes == want.boxes
        np.testing.assert_allclose(emb, _fake_embed([want.report])[0].numpy())


def test_items_carry_embeddings(shards, tokenizer):
    from sista_kit.data.transforms import ImageTransform
    from sista_kit.train.data import PretrainCollate

    index = read_shard_index(shards)
    raw = _raw_samples(shard_urls(index, "pretrain")[0])[:4]
    items = [ShardItems(tokenizer, 32, ImageTransform(), with_embeddings=True)(s) for s in raw]
    images, texts = PretrainCollate(report_embed=None)(items)
    assert images.shape == (4, 1, SIZE, SIZE)
    torch.testing.assert_close(texts.report_embeddings, _fake_embed([i["report"] for i in items]))


def test_rewrite_is_a_no_op_and_another_request_is_refused(folder, shards):
    before = (shards / "shards.json").stat().st_mtime_ns
    _write(folder)
    assert (shards / "shards.json").stat().st_mtime_ns == before
    with pytest.raises(FileExistsError, match="another request"):
        write_shards(folder, splits=("pretrain",), max_count=PER_SHARD, progress=False)


def test_bad_arguments_are_named(folder, tmp_path):
    with pytest.raises(ValueError, match="splits"):
        write_shards(folder, tmp_path / "s", splits=("nope",))
    with pytest.raises(ValueError, match="max_count"):
        write_shards(folder, tmp_path / "s", max_count=0)
    with pytest.raises(ValueError, match="report_embed and embeddings"):
        write_shards(folder, tmp_path / "s", report_embed=_fake_embed)
    with pytest.raises(FileNotFoundError, match="no complete shards"):
        read_shard_index(tmp_path)
    with pytest.raises(ValueError, match="no split 'test'"):
        shard_urls(read_shard_index(folder), "test")


def test_missing_part_is_named():
    with pytest.raises(ValueError, match="lacks png"):
        sample_from_shard({"__key__": "000000001", "__url__": "x.tar", "txt": b"r", "json": b"{}"})


def test_config_checks_dataset_type():
    from sista_kit.train import PretrainConfig

    with pytest.raises(ValueError, match="dataset_type"):
        PretrainConfig(dataset_type="csv")
    with pytest.raises(ValueError, match="shard or dataset folder"):
        PretrainConfig(dataset_type="webdataset")


# --- reading: one epoch, ranks --------------------------------------------------------------------------


def _ids(items: list[dict]) -> list[str]:
    """A collate that keeps only the study ids of a batch."""
    return [i["sample_id"] for i in items]


def _epoch_ids(loader) -> list[str]:
    return [sid for batch in loader for sid in batch]


def _shard_epoch(shards: Path, tokenizer, rank: int, world: int, batch: int, workers: int = 0) -> list[str]:
    from sista_kit.data.transforms import ImageTransform
    from sista_kit.train.shard_loader import shard_loader

    info = shard_loader(
        read_shard_index(shards),
        "pretrain",
        batch,
        ShardItems(tokenizer, 32, ImageTransform()),
        _ids,
        workers,
        seed=0,
        world_size=world,
        rank=rank,
    )
    info.set_epoch(0)
    ids = _epoch_ids(info.dataloader)
    assert len(ids) == info.dataloader.num_batches * batch
    return ids


@pytest.fixture(scope="module")
def even_shards(folder, tmp_path_factory) -> tuple[Path, int]:
    """Shards that split evenly between 2 ranks (6 of 8 samples: the first 48 pretraining studies)."""
    rows = read_manifest(folder, "pretrain")
    assert len(rows) >= 48
    out = tmp_path_factory.mktemp("even")
    import shutil

    sub = out / "data"
    shutil.copytree(folder, sub, ignore=shutil.ignore_patterns("shards"))
    keep = {r["id"] for r in rows[:48]}
    manifest = [json.loads(x) for x in (sub / "manifest.jsonl").read_text().splitlines()]
    manifest = [r for r in manifest if r["split"] != "pretrain" or r["id"] in keep]
    (sub / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest))
    return write_shards(sub, max_count=8, progress=False), 48


@pytest.mark.slow
def test_shards_and_folder_give_the_same_epoch(even_shards, tokenizer):
    from sista_kit.data.datasets import PretrainDataset
    from sista_kit.data.transforms import ImageTransform
    from sista_kit.train.data import make_loader

    shards, n = even_shards
    folder = shards.parent
    dataset = PretrainDataset(folder, tokenizer, 32, ImageTransform(), split="pretrain")
    info = make_loader(dataset, 4, _ids, 0, 0, 1, 0, True, False, False, "folder")
    info.set_epoch(0)
    from_folder = _epoch_ids(info.dataloader)
    from_shards = _shard_epoch(shards, tokenizer, 0, 1, 4)
    assert len(from_folder) == len(from_shards) == n
    assert set(from_shards) == set(from_folder)
    # two DataLoader workers split the shards between them and still read the epoch once
    assert sorted(_shard_epoch(shards, tokenizer, 0, 1, 4, workers=2)) == sorted(from_folder)


@pytest.mark.slow
def test_two_ranks_read_disjoint_samples(even_shards, tokenizer):
    shards, n = even_shards
    rank0 = _shard_epoch(shards, tokenizer, 0, 2, 4)
    rank1 = _shard_epoch(shards, tokenizer, 1, 2, 4)
    assert len(rank0) == len(rank1) == n // 2
    assert not set(rank0) & set(rank1)
    assert len(set(rank0) | set(rank1)) == n


def test_too_few_shards_for_the_ranks_is_refused(shards, tokenizer):
    from sista_kit.data.transforms import ImageTransform
    from sista_kit.train.data import PretrainCollate
    from sista_kit.train.shard_loader import shard_loader

    index = read_shard_index(shards)
    with pytest.raises(ValueError, match="cannot feed 64 ranks"):
        shard_loader(
            index, "pretrain", 4, ShardItems(tokenizer, 32, ImageTransform()), PretrainCollate(), 0, 0, 64, 0
        )


def _run_config(data: Path, logs: Path, name: str, **kw):
    """A one-epoch SIA run of the tiny model on shards."""
    from sista_kit.train import PretrainConfig

    values = dict(
        data=str(data),
        dataset_type="webdataset",
        loss="sia",
        loss_kwargs={"similarity": "labels"},
        model="sista-tiny",
        image_size=SIZE,
        epochs=1,
        batch_size=4,
        max_length=32,
        vocab_size=300,
        val_split=None,
        workers=0,
        logs=str(logs),
        name=name,
        progress=False,
        warmup=1,
    )
    return PretrainConfig(**{**values, **kw})


@pytest.mark.slow
def test_pretraining_reads_shards_and_their_embeddings(folder, tmp_path, caplog):
    """A run on shards with stored text-provider embeddings: no corpus embedding in the run."""
    from sista_kit.train import pretrain
    from sista_kit.train.shards import write_training_shards

    options = {"classes": "synthetic"}
    out = write_training_shards(
        folder,
        tmp_path / "shards",
        max_count=PER_SHARD,
        similarity="findings",
        similarity_kwargs=options,
        progress=False,
    )
    cfg = _run_config(
        out,
        tmp_path / "runs",
        "wds",
        loss_kwargs={"similarity": "findings", "similarity_kwargs": options},
        batch_size=8,
    )
    with caplog.at_level("WARNING"):
        ckpt = pretrain(cfg)
    assert (Path(ckpt) / "model.safetensors").is_file()
    assert "carry no report embeddings" not in caplog.text
    rows = (tmp_path / "runs" / "wds" / "train.csv").read_text().splitlines()
    assert len(rows) > 1


def _pretrain_rank(rank: int, cfg) -> None:
    """One rank of a spawned run (``dist_launch.run_ranks(..., init_group=False)``)."""
    from sista_kit.train import pretrain

    pretrain(cfg)


@pytest.mark.slow
@pytest.mark.distributed
def test_two_process_run_on_shards(even_shards, tmp_path):
    """Two gloo processes stream disjoint halves of the shards and take the same number of steps."""
    from dist_launch import run_ranks

    from sista_kit.train.logs import read_csv

    shards, n = even_shards
    cfg = _run_config(shards, tmp_path, "ddp", log_every_n_steps=1, device="cpu")
    run_ranks(_pretrain_rank, 2, cfg, init_group=False)
    assert len(read_csv(tmp_path / "ddp" / "train.csv")) == n // (2 * 4)


def test_command_line_writes_shards_and_names_bad_providers(folder, tmp_path, capsys):
    from sista_kit.train.shards import main

    assert main([str(folder), "--out", str(tmp_path / "s"), "--max-count", "20", "--no-progress"]) == 0
    assert Path(capsys.readouterr().out.strip()) == tmp_path / "s"
    assert read_shard_index(tmp_path / "s")["request"]["report_embeddings"] is None
    with pytest.raises(SystemExit):
        main([str(folder), "--out", str(tmp_path / "t"), "--similarity", "labels"])
    assert "only text providers embed reports" in capsys.readouterr().err
