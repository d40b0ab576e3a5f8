#!/usr/bin/env bash
# Distributed testing on one or more nodes with torchrun.
#
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
#
# GPUS is the number of processes per node; the environment (NNODES, NODE_RANK, PORT,
# MASTER_ADDR) is described in tools/misc/launch.sh.
source "$(dirname "$0")/misc/launch.sh"
[ $# -ge 3 ] || usage "CONFIG CHECKPOINT GPUS [test.py args...]"

torchrun_tool "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
