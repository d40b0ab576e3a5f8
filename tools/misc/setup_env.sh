#!/usr/bin/env bash
# Create or reuse the project's virtual environment and install the pinned stack.
#
# Usage: bash tools/misc/setup_env.sh            (called by `make env`, `make test`, `make demo`)
#
# Environment:
#   HIVIT_MM_VENV  where the environment lives (default: <repo>/.venv)
#   PYTHON         interpreter used to create it (default: python3)
#
# The environment is keyed on the requirement files and this script: an unchanged key
# reuses it in about a second; a changed key rebuilds it from scratch (pip's cache makes
# that minutes, not the ~15 minutes of a cold machine, most of which is mmcv's compile).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${HIVIT_MM_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
REQ=$ROOT/requirements
ENV_STAMP=$VENV/.hivit_mm-env
PKG_STAMP=$VENV/.hivit_mm-pkg

log() { printf '[setup_env] %s\n' "$*" >&2; }

env_key=$(cat "$REQ"/*.txt "$ROOT/tools/misc/setup_env.sh" | sha256sum | cut -d' ' -f1)
pkg_key=$(cat "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)

# This machine's pip configuration (PIP_FIND_LINKS and a pip.conf with find-links) makes pip
# prefer a local CPU-only torch wheel that cannot load torchvision's operators. Ignore it and
# install from the package registry. PIP_CONSTRAINT applies to every install below, including
# the dependencies pulled by mmcv's no-isolation build.
pip_() {
    env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null PIP_CONSTRAINT="$REQ/constraints.txt" \
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip "$@"
}

check_one_opencv() {
    local dists
    dists=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(" ".join(sorted({d.metadata["Name"].lower() for d in m.distributions() if d.metadata["Name"].lower().startswith("opencv")})))')
    if [ "$dists" != "opencv-python-headless" ]; then
        log "expected one OpenCV distribution, opencv-python-headless; found: ${dists:-none}"
        log "(two OpenCV packages share the cv2/ folder; see requirements/runtime.txt)"
        exit 1
    fi
}

check_imports() {
    local missing=()
    for mod in torch torchvision mmengine mmcv.ops mmpretrain.models mmdet.models mmseg.models hivit_mm; do
        if ! "$VENV/bin/python" -c "import $mod" >/dev/null 2>"$VENV/.import-$mod.log"; then
            missing+=("$mod")
            log "import $mod FAILED:"
            tail -n 5 "$VENV/.import-$mod.log" >&2
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "environment is broken; these modules do not import: ${missing[*]}"
        log "remove $VENV and run again, or see README.md (Installation)."
        exit 1
    fi
}

if [ -x "$VENV/bin/python" ] && [ "$(cat "$ENV_STAMP" 2>/dev/null)" = "$env_key" ]; then
    if [ "$(cat "$PKG_STAMP" 2>/dev/null)" != "$pkg_key" ]; then
        log "setup.py changed: reinstalling hivit_mm (editable)"
        pip_ install -q --no-deps --no-build-isolation -e "$ROOT"
        echo "$pkg_key" >"$PKG_STAMP"
    fi
    exit 0
fi

start=$(date +%s)
if [ -e "$VENV" ]; then
    log "requirements changed: rebuilding $VENV"
    rm -rf "$VENV"
fi
log "creating $VENV with $($PYTHON --version 2>&1)"
"$PYTHON" -m venv "$VENV"

log "build tools"
pip_ install -q -r "$REQ/build.txt"
log "torch and torchvision from the package registry (large download on a cold machine)"
pip_ install -q -r "$REQ/torch.txt"
# One OpenCV (why: requirements/runtime.txt). mmengine's published wheel requires
# opencv-python; its setup.py requires no OpenCV when cv2 already imports, so it is built
# (pure Python, seconds) from its sdist without isolation, after the headless build, with
# its other requirements listed in runtime.txt. mmcv's setup.py below does the same.
log "OpenCV (headless) and mmengine"
pip_ install -q "$(grep -i '^opencv-python-headless' "$REQ/runtime.txt")"
pip_ install -q --no-build-isolation --no-binary mmengine "$(grep '^mmengine' "$REQ/mminstall.txt")" \
    -r "$REQ/runtime.txt"
# mmcv's setup.py skips its C++ ops silently when torch is not importable, so it must build
# without isolation, against the torch installed above. pip caches the built wheel, so later
# environments on this machine reuse it instead of compiling again.
log "mmcv with compiled ops (about 10 minutes on 2 cores when it is not in pip's cache)"
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip_ install -q --no-build-isolation -r "$REQ/mminstall.txt"
log "mmpretrain, mmdet, mmsegmentation and test tools"
pip_ install -q -r "$REQ/runtime.txt" -r "$REQ/tests.txt"
log "hivit_mm (editable)"
pip_ install -q --no-deps --no-build-isolation -e "$ROOT"

check_imports
check_one_opencv
echo "$env_key" >"$ENV_STAMP"
echo "$pkg_key" >"$PKG_STAMP"
log "environment ready in $(( $(date +%s) - start )) s"
