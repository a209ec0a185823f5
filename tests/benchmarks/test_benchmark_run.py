"""The benchmark's main job at smoke size: outputs follow the schema; a resumed run redoes nothing."""

from __future__ import annotations

import json

import pytest
from suite.profiles import METHODS
from suite.results import RECORD_FIELDS, load_records


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    import run

    out = tmp_path_factory.mktemp("bench") / "out"
    assert run.main(["--profile", "smoke", "--tasks", "cls,seg,det,loc", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_smoke_outputs_follow_schema(smoke):
    records = load_records(smoke)  # validates every record
    assert {tuple(sorted(r)) for r in records} == {tuple(sorted(RECORD_FIELDS))}
    csv_lines = (smoke / "results.csv").read_text().strip().splitlines()
    assert csv_lines[0].split(",") == list(RECORD_FIELDS) and len(csv_lines) == len(records) + 1
    seen = {(r["method"], r["task"], r["fraction"]) for r in records if r["fraction"] is not None}
    assert seen == {(m, t, f) for m in METHODS for t in ("cls", "seg", "det", "loc") for f in (0.1, 1.0)}
    tasks = {r["task"] for r in records}
    assert {"fn_detection", "retrieval", "grounding"} <= tasks
    transfer = [r for r in records if r["fraction"] is not None]
    assert all(r["pretrain_seed"] == r["seed"] == 0 for r in transfer)
    assert all(r["n_train"] >= 1 and r["n_pos"] >= 1 for r in transfer)
    providers = {r["method"] for r in records if r["task"] == "fn_detection"}
    assert {"findings", "labels", "tfidf", "truth"} <= providers
    table = (smoke / "results.md").read_text()
    for heading in ("### cls /", "### seg /", "### det /", "### loc /", "Chance (a constant score)", "**"):
        assert heading in table
    assert "## Paired differences" in table and "sia-oracle (ground-truth labels: upper bound)" in table
    for name in ("fraction_curves.png", "alignment_maps.png", "pretrain_curves.png"):
        assert (smoke / name).stat().st_size > 10_000
    info = json.loads((smoke / "run_info.json").read_text())
    assert info["versions"]["torch"] and info["wall_s"]["total"] > 0 and info["units_run"] > 0
    assert (smoke / "splits" / "train.txt").is_file() and (
        smoke / "splits" / "seg_train_f0.1_s0.txt"
    ).is_file()
    heldout = list((smoke / "pretrain").glob("clip-s0-*/heldout.csv"))
    assert heldout and "retrieval_r1_same_findings" in heldout[0].read_text().splitlines()[0]
    head_logs = list((smoke / "transfer").rglob("head_loss.csv"))
    assert head_logs and not list((smoke / "transfer").rglob("*.pth"))  # logs kept, head weights not


@pytest.mark.slow
def test_resumed_run_skips_finished_work(smoke):
    import run

    before = (smoke / "results.json").read_text()
    assert (
        run.main(["--profile", "smoke", "--tasks", "cls,seg,det,loc", "--out", str(smoke), "--resume"]) == 0
    )
    info = json.loads((smoke / "run_info.json").read_text())
    assert info["units_run"] == 0 and info["units_reused"] > 0
    assert (smoke / "results.json").read_text() == before


def test_refuses_to_overwrite_without_resume(tmp_path):
    import run

    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(SystemExit, match="--resume"):
        run.main(["--profile", "smoke", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown choice"):
        run.main(["--tasks", "cls,vqa", "--out", str(tmp_path / "new")])


@pytest.mark.slow
def test_default_profile_subsets_hold_two_positives_of_every_target_class(tmp_path):
    """Every (task, fraction, seed) label subset of the default profile has n_pos >= 2."""
    from suite.pipeline import prepare_data, subset_info
    from suite.profiles import get_profile

    profile = get_profile("default")
    root = prepare_data("synthetic", profile, tmp_path)
    n = len((root / "splits" / "train.txt").read_text().split())
    for task in ("cls", "seg", "det", "loc"):
        for fraction in profile["fractions"]:
            for seed in range(profile["pretrain_seeds"]):
                counts = subset_info(task, fraction, seed, profile, root)
                assert counts["n_pos"] >= 2, (task, fraction, seed, counts)
                assert counts["n_train"] >= max(1, round(fraction * n))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0"], "at least one pretraining seed"),
        (["--seeds", "-1"], "at least one pretraining seed"),
        (["--jobs", "0"], "at least one worker"),
        (["--fractions", "abc"], "expected numbers in"),
        (["--fractions", "0.5,2"], r"must lie in \(0, 1\]"),
        (["--fractions", ","], r"must lie in \(0, 1\]"),
    ],
)
def test_bad_arguments_are_named(tmp_path, args, message):
    import run

    with pytest.raises(SystemExit, match=message):
        run.main(["--profile", "smoke", "--out", str(tmp_path / "o"), *args])
    assert not (tmp_path / "o").exists()  # nothing is written before the arguments are checked


def test_out_on_a_file_and_cuda_without_gpu(tmp_path):
    import run
    import torch

    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit, match="is a file"):
        run.main(["--profile", "smoke", "--out", str(tmp_path / "f")])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            run.main(["--profile", "smoke", "--device", "cuda", "--out", str(tmp_path / "c")])
        assert not (tmp_path / "c").exists()


def test_a_second_run_into_the_same_out_is_refused(tmp_path):
    from suite.lock import RunLock

    with RunLock(tmp_path):
        with pytest.raises(SystemExit, match="in use by a running benchmark"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):  # released: the next run may take it
        pass


@pytest.mark.slow
def test_schedule_choice_scores_the_validation_split(smoke, tmp_path):
    """choose_schedule trains the profile's heads on the run's checkpoints and scores the val split."""
    import choose_schedule

    out = tmp_path / "schedule"
    argv = ["--run", str(smoke), "--out", str(out), "--methods", "random,clip", "--fractions", "0.1"]
    argv += ["--iters", "1,2", "--jobs", "1"]
    assert choose_schedule.main(argv) == 0
    records = json.loads((out / "records.json").read_text())
    assert {(r["task"], r["method"], r["iters"]) for r in records} == {
        (t, m, i) for t in ("seg", "det") for m in ("random", "clip") for i in (1, 2)
    }
    for metrics in out.glob("units/*/*/*/work/metrics.json"):
        assert json.loads(metrics.read_text())["eval_split"] == "val"
    text = (out / "schedule.md").read_text()
    assert "### seg: validation mDice_fg" in text and "### det: validation mgca_bbox_mAP" in text
    assert (out / "schedule.png").stat().st_size > 10_000
    before = (out / "records.json").read_text()
    assert choose_schedule.main(argv) == 0  # finished units are reused, not rerun
    assert (out / "records.json").read_text() == before
    with pytest.raises(SystemExit, match="has no head schedule"):
        choose_schedule.main([*argv[:4], "--tasks", "cls"])
    with pytest.raises(SystemExit, match="run_info.json does not exist"):
        choose_schedule.main(["--run", str(tmp_path / "none"), "--out", str(out)])
