#!/usr/bin/env bash
# Distributed training on one or more nodes with torchrun.
#
# Usage: bash tools/dist_train.sh CONFIG GPUS [train.py args...]
#
# GPUS is the number of processes per node; the environment (NNODES, NODE_RANK, PORT,
# MASTER_ADDR) is described in tools/misc/launch.sh.
source "$(dirname "$0")/misc/launch.sh"
[ $# -ge 2 ] || usage "CONFIG GPUS [train.py args...]"

torchrun_tool "$2" train.py "$1" --launcher pytorch "${@:3}"
