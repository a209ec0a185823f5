"""``benchmarks/run.py --profile paper --dry-run``: on tiny real-layout replicas (slow), and its input checks.

The replicas (``tests/data/replicas.py``) are prepared at 64 px, so the paper model (ViT-B/16 + BERT-base)
steps at 64 px on CPU; the plan is then that of the replica folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from suite.dryrun import check_inputs
from suite.profiles import METHODS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # replicas.py

SIZE = 64


def _prepare(name: str, root: Path) -> Path:
    import replicas

    from sista_kit.data.prepare import prepare

    if name == "mimic-cxr":
        jpg, reports = replicas.mimic(root / "raw", n=96)
        options = dict(reports=str(reports), probe_fraction=0.5)
        return prepare(name, jpg, root / "data", image_size=SIZE, progress=False, **options)
    build = {"siim": replicas.siim, "rsna": replicas.rsna}[name]
    return prepare(name, build(root / "raw"), root / "data", image_size=SIZE, progress=False)


def _dry_run(data: Path, out: Path, tasks: str, methods: str | None = None) -> int:
    import run

    argv = ["--profile", "paper", "--dry-run", "--data", str(data), "--tasks", tasks, "--out", str(out)]
    return run.main(argv + (["--methods", methods] if methods else []))


@pytest.mark.slow
def test_paper_dry_run_on_the_mimic_replica(tmp_path, capsys):
    """Every method pretrains one step (from shards with stored report embeddings), cls transfers and the
    diagnostics run on the first checkpoint."""
    from sista_kit.data.shards import read_shard_index

    out = tmp_path / "bench"
    assert _dry_run(_prepare("mimic-cxr", tmp_path), out, "cls") == 0
    text = capsys.readouterr().out
    for phrase in ("inputs (all present)", "EXTRAPOLATION", "GPU throughput has not been measured"):
        assert phrase in text
    plan = json.loads((out / "dry-run" / "plan.json").read_text())
    pretrained = {m for m, spec in METHODS.items() if spec is not None}
    assert {s["name"] for s in plan["steps"] if s["stage"] == "pretrain"} == pretrained
    assert {s["name"] for s in plan["steps"] if s["stage"] == "transfer"} == {"cls"}
    assert all(s["flops"] > 0 and s["samples"] > 0 for s in plan["steps"])
    assert [r["stage"] for r in plan["plan"]] == ["pretrain", "transfer cls", "diagnostics"]
    assert (out / "dry-run" / "diagnostics" / "fn_detection.json").is_file()
    stored = read_shard_index(out / "dry-run" / "shards")["request"]["report_embeddings"]
    assert stored["similarity"] == "findings"


@pytest.mark.slow
@pytest.mark.mm
def test_paper_dry_run_steps_segmentation_and_detection(tmp_path):
    for name, task in (("siim", "seg"), ("rsna", "det")):
        out = tmp_path / name / "bench"
        assert _dry_run(_prepare(name, tmp_path / name), out, f"cls,{task}", "random") == 0
        plan = json.loads((out / "dry-run" / "plan.json").read_text())
        assert [s["name"] for s in plan["steps"]] == ["cls", task]
        assert plan["plan"][-1]["stage"] == f"transfer {task}" and plan["plan"][-1]["flops"] > 0


def test_missing_data_is_reported_and_nothing_runs(tmp_path, capsys):
    assert _dry_run(tmp_path / "absent", tmp_path / "out", "cls") == 2
    text = capsys.readouterr().out
    assert "missing inputs, nothing was run" in text and str(tmp_path / "absent") in text
    assert not (tmp_path / "out" / "dry-run").exists()


def test_missing_weights_and_folders_are_each_named(tmp_path):
    needs = [
        ("vision weights", str(tmp_path / "vit.safetensors")),
        ("text tower", str(tmp_path / "bert")),
        ("tokenizer", str(tmp_path / "tok")),
        ("sentence encoder", "(missing: no encoder package)"),
    ]
    problems = check_inputs(needs, pretraining=True, tasks=["cls"])
    assert len(problems) == 4
    for (what, _), problem in zip(needs, problems, strict=True):
        assert problem.startswith(what)


def test_loc_without_masks_is_refused_before_pretraining(tmp_path):
    """A folder whose studies have no per-finding masks cannot run ``loc``: the dry run lists it and a
    real run stops before pretraining, naming the missing field."""
    import run

    from sista_kit.data import build_synthetic

    root = build_synthetic(tmp_path / "d", 60, seed=0, image_size=32, workers=1, progress=False)
    manifest = root / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({**r, "findings_mask": None}) + "\n" for r in rows))
    problems = check_inputs([("data", str(root))], pretraining=True, tasks=["cls", "loc"])
    assert problems and all("findings_mask" in p and "--tasks loc" in p for p in problems)
    assert check_inputs([("data", str(root))], pretraining=True, tasks=["cls"]) == []
    out = tmp_path / "bench"
    with pytest.raises(SystemExit, match="findings_mask"):
        run.main(["--data", str(root), "--tasks", "cls,loc", "--profile", "smoke", "--out", str(out)])
    assert not (out / "pretrain").exists()
