"""GLoRIA and MGCA equal the official implementations on the shared reference cases (float64)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from sista_kit.baselines.reference_cases import GLORIA_INPUTS, MGCA_INPUTS, compare_case, relative_error
from sista_kit.baselines.verify import main, verify_files

TOL = 1e-6


def test_every_case_matches_through_the_verify_command(baseline_cases: list[Path], capsys) -> None:
    assert main([str(p) for p in baseline_cases]) == 0
    printed = capsys.readouterr().out
    assert "all within tolerance" in printed
    for path in baseline_cases:
        assert str(path) in printed


@pytest.mark.parametrize("kind", ["gloria", "mgca"])
def test_every_stored_key_is_checked(baseline_cases: list[Path], kind: str) -> None:
    inputs = {"gloria": GLORIA_INPUTS, "mgca": MGCA_INPUTS}
    cases = [p for p in baseline_cases if p.name.startswith(kind + "_")]
    assert len(cases) >= 3
    for path in cases:
        rows = compare_case(path)
        stored = set(np.load(path).files)
        checked = {key for key, *_ in rows}
        assert checked == stored - inputs[kind]
        assert {k for k in stored if k.startswith("grad_")} <= checked
        worst = max(err for *_, err in rows)
        assert worst <= TOL, f"{path.name}: worst relative error {worst:.2e}"


def test_gradients_of_unused_word_slots_are_exactly_zero(baseline_cases: list[Path]) -> None:
    from sista_kit.baselines.reference_cases import run_gloria_case

    for path in (p for p in baseline_cases if p.name.startswith("gloria_")):
        arrays = dict(np.load(path))
        got = run_gloria_case(arrays)
        unused = ~arrays["word_mask"]
        assert unused.any()
        assert np.all(got["grad_words_emb"][unused] == 0.0)
        assert np.all(got["attn_maps"][unused] == 0.0)


def _perturbed_copy(src: Path, dst: Path, key: str, scale: float) -> Path:
    arrays = dict(np.load(src))
    arrays[key] = arrays[key] * scale
    np.savez(dst, **arrays)
    return dst


def test_verify_fails_on_a_wrong_reference(baseline_cases: list[Path], tmp_path: Path) -> None:
    gloria = next(p for p in baseline_cases if p.name.startswith("gloria_"))
    mgca = next(p for p in baseline_cases if p.name.startswith("mgca_"))
    bad_g = _perturbed_copy(gloria, tmp_path / "gloria_bad.npz", "local_loss0", 1 + 1e-5)
    bad_m = _perturbed_copy(mgca, tmp_path / "mgca_bad.npz", "grad_word_emb_q", 1 + 1e-5)
    out = io.StringIO()
    worst = verify_files([bad_g, bad_m], out=out)
    assert all(1e-6 < e < 1e-4 for e in worst.values())
    assert "FAIL" in out.getvalue()
    assert main([str(bad_g)]) == 1
    assert main([str(gloria), str(bad_m)]) == 1


def test_verify_rejects_unusable_files(baseline_cases: list[Path], tmp_path: Path) -> None:
    assert main([str(tmp_path / "gloria_missing.npz")]) == 2
    renamed = tmp_path / "case0.npz"
    renamed.write_bytes(baseline_cases[0].read_bytes())
    assert main([str(renamed)]) == 2
    gloria = next(p for p in baseline_cases if p.name.startswith("gloria_"))
    arrays = dict(np.load(gloria))
    np.savez(tmp_path / "gloria_extra.npz", **arrays, new_output=np.zeros(3))
    assert main([str(tmp_path / "gloria_extra.npz")]) == 2
    del arrays["words_emb"]
    np.savez(tmp_path / "gloria_noinput.npz", **arrays)
    assert main([str(tmp_path / "gloria_noinput.npz")]) == 2


def test_verify_default_folder_from_environment(baseline_fixture_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SISTA_FIXTURES", str(baseline_fixture_dir))
    assert main([]) == 0
    assert "all within tolerance" in capsys.readouterr().out
    monkeypatch.setenv("SISTA_FIXTURES", str(baseline_fixture_dir / "does-not-exist"))
    assert main([]) == 2


def test_relative_error() -> None:
    ref = np.array([2.0, -4.0])
    assert relative_error(ref, ref) == 0.0
    assert relative_error(np.array([2.0, -4.004]), ref) == pytest.approx(1e-3)
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0
    assert relative_error(np.zeros(3), ref) == float("inf")
    assert relative_error(np.array([np.nan, 0.0]), ref) == float("inf")
