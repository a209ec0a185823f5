#!/usr/bin/env bash
# Build the sista_kit environment from nothing: a virtual environment with the pinned stack,
# mmcv 2.1.0 compiled with its CPU ops, and sista_kit installed editable with its dev tools.
# Idempotent: when nothing changed since the last successful run it returns in seconds.
#
#   bash scripts/install.sh            # venv in ./.venv (override with SISTA_VENV=/path)
#
# The compiled mmcv wheel is cached in ${SISTA_WHEEL_CACHE:-~/.cache/sista_kit/wheels}, keyed by
# the torch version, and re-checked for its ops before it is reused.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SISTA_VENV:-$ROOT/.venv}"
PYTHON="${SISTA_PYTHON:-python3.11}"
WHEELS="${SISTA_WHEEL_CACHE:-$HOME/.cache/sista_kit/wheels}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
STAMP="$VENV/.sista_install_stamp"
# SHA-256 of mmcv-2.1.0.tar.gz on PyPI: the sdist is compiled here, so it is verified before use.
MMCV_SDIST_SHA256="d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f"

die() { echo "install.sh: ERROR: $*" >&2; exit 1; }
step() { echo "==> $*"; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; sista_kit's pinned stack needs Python 3.11"
fingerprint=$(cat "$CONSTRAINTS" "$ROOT/pyproject.toml" "$ROOT/setup.py" "$0" | sha256sum | cut -d' ' -f1)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$fingerprint" ]] \
  && "$VENV/bin/python" -c "import sista_kit, mmcv._ext" 2>/dev/null; then
  echo "sista_kit environment in $VENV is up to date"
  exit 0
fi

[[ -x "$VENV/bin/python" ]] || { step "creating venv $VENV"; "$PYTHON" -m venv "$VENV"; }
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -c "$CONSTRAINTS")

step "torch, torchvision and build tools"
"${PIP[@]}" torch torchvision triton "setuptools<81" wheel ninja numpy
"$PY" -c "import pkg_resources" 2>/dev/null \
  || die "setuptools >= 81 has no pkg_resources; mmcv's build and mmengine's configs need setuptools<81"

step "mmengine and mmcv's runtime dependencies"
"${PIP[@]}" mmengine addict yapf packaging Pillow pyyaml opencv-python-headless

torch_version=$("$PY" -c "import torch; print(torch.__version__)")
cached=$(ls "$WHEELS/torch-$torch_version"/mmcv-2.1.0-*.whl 2>/dev/null | head -n1 || true)
has_ops() { "$PY" - "$1" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if any(n.startswith("mmcv/_ext") and n.endswith(".so") for n in names) else 1)
PY
}
if [[ -n "$cached" ]] && ! has_ops "$cached"; then
  echo "cached $cached has no compiled ops; rebuilding"; rm -f "$cached"; cached=""
fi
if ! "$PY" -c "import mmcv, mmcv.ops, mmcv._ext; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  if [[ -z "$cached" ]]; then
    step "compiling mmcv 2.1.0 with CPU ops (several minutes on 2 cores)"
    build=$(mktemp -d)
    # pip checks the pinned hash before it runs anything of the sdist; sha256sum checks the file kept.
    echo "mmcv==2.1.0 --hash=sha256:$MMCV_SDIST_SHA256" >"$build/mmcv-requirement.txt"
    "$PY" -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
      --no-build-isolation --require-hashes -d "$build" -r "$build/mmcv-requirement.txt" \
      || die "mmcv 2.1.0 sdist download failed or its SHA-256 is not $MMCV_SDIST_SHA256"
    sdist="$build/mmcv-2.1.0.tar.gz"
    [[ -f "$sdist" ]] || die "pip download left no $sdist"
    got=$(sha256sum "$sdist" | cut -d' ' -f1)
    [[ "$got" == "$MMCV_SDIST_SHA256" ]] \
      || die "$sdist has SHA-256 $got, expected $MMCV_SDIST_SHA256: refusing to build it"
    tar -xzf "$sdist" -C "$build"
    # torch >= 2.10 headers need C++20; mmcv's setup.py hard-codes -std=c++17 after user flags.
    sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-2.1.0/setup.py"
    grep -q -- '-std=c++20' "$build/mmcv-2.1.0/setup.py" || die "could not patch mmcv's C++ standard"
    mkdir -p "$WHEELS/torch-$torch_version"
    (cd "$build/mmcv-2.1.0" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=2 \
      "$PY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps --no-cache-dir \
      -w "$WHEELS/torch-$torch_version" .)
    rm -rf "$build"
    cached=$(ls "$WHEELS/torch-$torch_version"/mmcv-2.1.0-*.whl | head -n1)
    has_ops "$cached" || die "mmcv wheel was built without ops (torch missing from the build env?)"
  fi
  step "installing $cached"
  "${PIP[@]}" --no-deps --force-reinstall "$cached"
fi
"$PY" -c "import mmcv.ops, mmcv._ext" || die "mmcv._ext does not import: mmcv was built without its ops"

step "sista_kit (editable) with the rest of the stack"
"${PIP[@]}" -e "$ROOT[dev]"
# torchxrayvision is only needed for its data files (the IU reports); its deps would pull extras.
"${PIP[@]}" --no-deps torchxrayvision

step "checking the environment"
(cd / && SISTA_ROOT="$ROOT" "$PY" - <<'PY'
import importlib.util, os, mmcv
assert mmcv.__version__ == "2.1.0", mmcv.__version__
import torch, torchvision, triton, open_clip, timm, transformers  # noqa: F401
import mmcv.ops, mmcv._ext, mmdet.models, mmseg.models  # noqa: F401
import sista_kit, sista_kit.kernels, sista_kit.baselines  # noqa: F401
for name in ("kernels", "baselines"):  # they must install as sista_kit.<name> only
    spec = importlib.util.find_spec(name)
    assert spec is None or not str(spec.origin).startswith(os.environ["SISTA_ROOT"]), f"top-level {name} installed"
print(f"torch {torch.__version__}, triton {triton.__version__}, open_clip {open_clip.__version__}, "
      f"timm {timm.__version__}, transformers {transformers.__version__}, mmcv {mmcv.__version__}")
PY
)
echo "$fingerprint" > "$STAMP"
echo "sista_kit environment ready: source $VENV/bin/activate"
