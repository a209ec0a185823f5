"""The benchmark runner killed (SIGKILL) mid-run and resumed gives the uninterrupted run's results exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
ARGS = ["--profile", "smoke", "--tasks", "cls", "--methods", "clip,random"]
TIMEOUT_S = 600


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(RUN), *ARGS, "--out", str(out), *extra]


def _run(out: Path, *extra: str) -> None:
    log = out.parent / ("".join([out.name, *extra]) + ".log")
    with open(log, "w") as fh:
        done = subprocess.run(_command(out, *extra), stdout=fh, stderr=subprocess.STDOUT, timeout=TIMEOUT_S)
    assert done.returncode == 0, log.read_text()[-3000:]


def _checkpoint_written(out: Path) -> bool:
    """A pretraining checkpoint exists, finished (``epoch_<n>``) or being written (``.epoch_<n>.tmp-*``)."""
    return any("epoch_" in p.name for p in out.glob("pretrain/*/checkpoints/*"))


def _transfer_finished(out: Path) -> bool:
    return any(out.glob("transfer/**/result.json"))


#: Fault points. On 2 cores the pretraining kill lands while ``.epoch_1.tmp-*`` is being written (the
#: smoke profile pretrains one epoch), the transfer kill with units still pending.
TRIGGERS: dict[str, Callable[[Path], bool]] = {
    "pretraining": _checkpoint_written,
    "transfer": _transfer_finished,
}


def _run_and_kill(out: Path, trigger: Callable[[Path], bool]) -> None:
    """Start the runner in its own process group and SIGKILL the whole group once ``trigger(out)``."""
    log = out.parent / f"{out.name}-killed.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(_command(out), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + TIMEOUT_S
        try:
            while not trigger(out):
                assert proc.poll() is None, (
                    "the runner ended before the fault point:\n" + log.read_text()[-3000:]
                )
                assert time.monotonic() < deadline, "the fault point was never reached"
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and any worker processes
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()  # killed before it finished


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    _run(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(TRIGGERS))
def test_killed_run_resumes_to_the_same_results(uninterrupted, tmp_path, stage):
    out = tmp_path / "out"
    _run_and_kill(out, TRIGGERS[stage])
    _run(out, "--resume")
    expected = json.loads((uninterrupted / "results.json").read_text())
    got = json.loads((out / "results.json").read_text())
    assert len(got) == len(expected) > 0
    assert got == expected  # every value bit-for-bit (JSON keeps the shortest round-trip repr)
    assert (out / "results.csv").read_text() == (uninterrupted / "results.csv").read_text()
    info = json.loads((out / "run_info.json").read_text())
    if stage == "transfer":
        assert info["units_reused"] >= 1  # finished transfers were kept, not redone
