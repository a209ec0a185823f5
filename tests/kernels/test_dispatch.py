"""Backend choice: explicit argument, SISTA_KERNELS, auto rules, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from sista_kit.kernels import BACKENDS, choose_backend, dispatch  # noqa: E402
from sista_kit.kernels.limits import MIN_INFONCE_BATCH  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeCuda:
    """Shape / dtype / device stand-in for a CUDA tensor (no GPU needed to test the auto rules)."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.bfloat16
    is_cuda: bool = True

    def dim(self) -> int:
        return len(self.shape)

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", 0)


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv("SISTA_KERNELS", raising=False)


def test_backends_and_unknown_values():
    assert BACKENDS == ("auto", "torch", "triton")
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        choose_backend("cuda", "infonce", x, x)
    with pytest.raises(ValueError, match="unknown kernel op"):
        choose_backend("auto", "softmax", x, x)


def test_cpu_tensors_never_reach_triton_in_auto_mode():
    big = torch.zeros(MIN_INFONCE_BATCH * 2, 8)
    assert choose_backend("auto", "infonce", big, big) == "torch"
    assert (
        choose_backend("auto", "sparse_align", torch.zeros(64, 196, 128), torch.zeros(64, 112, 128))
        == "torch"
    )


def test_explicit_argument_wins_over_environment(monkeypatch, device):
    x = torch.zeros(4, 8, device=device)
    monkeypatch.setenv("SISTA_KERNELS", "triton")
    assert choose_backend("torch", "infonce", x, x) == "torch"
    monkeypatch.setenv("SISTA_KERNELS", "torch")
    assert choose_backend("triton", "infonce", x, x) == "triton"  # on CPU: under the interpreter


def test_environment_steers_auto(monkeypatch, device):
    cuda = FakeCuda((MIN_INFONCE_BATCH, 256))
    monkeypatch.setenv("SISTA_KERNELS", "torch")
    assert choose_backend("auto", "infonce", cuda, cuda) == "torch"
    monkeypatch.setenv("SISTA_KERNELS", "triton")
    x = torch.zeros(4, 8, device=device)
    assert choose_backend("auto", "infonce", x, x) == "triton"  # forced (interpreter on CPU)
    monkeypatch.setenv("SISTA_KERNELS", "fast")
    with pytest.raises(ValueError, match="SISTA_KERNELS='fast'"):
        choose_backend("auto", "infonce", x, x)


def test_auto_rules_on_cuda_tensors(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    large = FakeCuda((MIN_INFONCE_BATCH, 512))
    assert choose_backend("auto", "infonce", large, large) == "triton"
    small = FakeCuda((256, 512))
    assert choose_backend("auto", "infonce", small, small) == "torch", "below the size where Triton pays"
    wide = FakeCuda((MIN_INFONCE_BATCH, 2048))
    assert choose_backend("auto", "infonce", wide, wide) == "torch", "unsupported D"
    double = FakeCuda((MIN_INFONCE_BATCH, 512), torch.float64)
    assert choose_backend("auto", "infonce", double, double) == "torch", "unsupported dtype"
    patches, words = FakeCuda((256, 196, 128)), FakeCuda((256, 112, 128))
    assert choose_backend("auto", "sparse_align", patches, words) == "triton"
    assert choose_backend("auto", "sparse_align", FakeCuda((2, 16, 8)), FakeCuda((2, 4, 8))) == "torch"
    assert choose_backend("auto", "sparse_align", FakeCuda((256, 4096, 128)), words) == "torch"
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    assert choose_backend("auto", "infonce", large, large) == "torch", "no triton: reference"


def test_explicit_triton_on_unsupported_shape_raises():
    with pytest.raises(ValueError, match="unsupported P=2000 patches"):
        choose_backend("triton", "sparse_align", torch.zeros(1, 2000, 4), torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="unsupported dtype torch.float64"):
        choose_backend("triton", "infonce", torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3, 4))


def test_explicit_triton_without_triton_package_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` fail
    x = torch.zeros(4, 8)
    with pytest.raises(RuntimeError, match="triton is not importable"):
        choose_backend("triton", "infonce", x, x)


def test_explicit_triton_on_cpu_without_interpreter_raises():
    """In a fresh process without TRITON_INTERPRET: dispatch, loss module and kernel API all refuse."""
    script = textwrap.dedent(
        """
        import torch
        from sista_kit.kernels import choose_backend
        from sista_kit.losses import SparseTokenAlignLoss
        x = torch.randn(2, 5, 8); y = torch.randn(2, 3, 8); m = torch.ones(2, 3, dtype=torch.bool)
        assert choose_backend("auto", "sparse_align", x, y) == "torch"
        module = SparseTokenAlignLoss(backend="triton")
        for call in (lambda: choose_backend("triton", "sparse_align", x, y),
                     lambda: module(image_tokens=x, text_tokens=y, text_mask=m)):
            try:
                call()
            except RuntimeError as err:
                assert "TRITON_INTERPRET=1" in str(err), err
            else:
                raise SystemExit("no error")
        from sista_kit.kernels import sparse_grouped_embeddings_triton
        try:
            sparse_grouped_embeddings_triton(x, y, m)
        except RuntimeError as err:
            assert "need CUDA tensors" in str(err), err
        else:
            raise SystemExit("no error from the kernel API")
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "SISTA_KERNELS")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
