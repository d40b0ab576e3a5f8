#!/usr/bin/env bash
# Put the four Fashion-MNIST files (Xiao et al. 2017, Zalando, MIT licence; 60,000 training
# and 10,000 test images, 28x28 grey, 10 classes) where mmpretrain's `FashionMNIST` dataset
# reads them: uncompressed IDX files in one directory.
#
# Usage: bash tools/misc/get_fashion_mnist.sh [DEST]     (default: data/fashion_mnist)
#        (`make demo` runs it through tools/demo.py)
#
# Sources, first that works:
#   1. DEST already holds the four files (a copy you put there, or an earlier run);
#   2. the Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist/),
#      installed with apt-get when it is missing and this runs as root on a Debian-like
#      system;
#   3. the standard download (mmpretrain's `FashionMNIST(download=True)`, from the
#      dataset's own mirror), with the Python of $HIVIT_MM_VENV or `python3`.
# Every file is checked against the MD5 of the published one. If nothing works it stops
# and says what to install.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEST=${1:-$ROOT/data/fashion_mnist}
PKG_DIR=${FASHION_MNIST_PKG_DIR:-/usr/share/datasets/fashion-mnist}
PY=${HIVIT_MM_VENV:+$HIVIT_MM_VENV/bin/python}
PY=${PY:-python3}

log() { printf '[get_fashion_mnist] %s\n' "$*" >&2; }

# name and MD5 of each uncompressed file: the published files' contents (the Debian package
# recompressed them, so the sums of the .gz files differ from the upstream ones)
FILES=(
    "train-images-idx3-ubyte f4a8712d7a061bf5bd6d2ca38dc4d50a"
    "train-labels-idx1-ubyte 9018921c3c673c538a1fc5bad174d6f9"
    "t10k-images-idx3-ubyte 8181f5470baa50b63fa0f6fddb340f0a"
    "t10k-labels-idx1-ubyte 15d484375f8d13e6eb1aabb0c3f46965"
)

md5_ok() {  # md5_ok FILE MD5
    [ -f "$1" ] && [ "$(md5sum "$1" | cut -d' ' -f1)" = "$2" ]
}

have_all() {
    local entry
    for entry in "${FILES[@]}"; do
        md5_ok "$DEST/${entry%% *}" "${entry##* }" || return 1
    done
}

unpack_from() {  # unpack_from DIR: unpack DIR/*.gz into DEST, checking each file
    local src=$1 entry name
    mkdir -p "$DEST"
    for entry in "${FILES[@]}"; do
        name=${entry%% *}
        [ -f "$src/$name.gz" ] || { log "$src/$name.gz is missing"; return 1; }
        gunzip -c "$src/$name.gz" >"$DEST/$name.tmp"
        if ! md5_ok "$DEST/$name.tmp" "${entry##* }"; then
            rm -f "$DEST/$name.tmp"
            log "$src/$name.gz does not hold the published file (MD5 ${entry##* }); not using it"
            return 1
        fi
        mv "$DEST/$name.tmp" "$DEST/$name"
    done
}

if have_all; then
    log "using the copy in $DEST"
    exit 0
fi

if [ ! -d "$PKG_DIR" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing the Debian package dataset-fashion-mnist"
    apt-get install -y -q dataset-fashion-mnist >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q dataset-fashion-mnist >&2; } ||
        log "apt-get could not install dataset-fashion-mnist"
fi
if [ -d "$PKG_DIR" ] && unpack_from "$PKG_DIR" && have_all; then
    log "unpacked the Debian package's files ($PKG_DIR) into $DEST"
    exit 0
fi

log "downloading with mmpretrain's FashionMNIST (about 30 MB)"
if "$PY" - "$DEST" >&2 <<'EOF' && have_all; then
import sys
from mmpretrain.datasets import FashionMNIST
FashionMNIST(data_root=sys.argv[1], split='train', download=True)
EOF
    rm -f "$DEST"/*.gz
    log "downloaded into $DEST"
    exit 0
fi

log "ERROR: no Fashion-MNIST files. Do one of:
  - put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
    t10k-labels-idx1-ubyte (uncompressed) into $DEST;
  - install the Debian package: sudo apt-get install dataset-fashion-mnist;
  - allow downloads from the dataset's mirror
    (http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/), then run this again."
exit 1
