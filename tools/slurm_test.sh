#!/usr/bin/env bash
# Testing on a Slurm cluster.
#
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#     bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
#
# The environment is described in tools/misc/launch.sh.
source "$(dirname "$0")/misc/launch.sh"
[ $# -ge 4 ] || usage "PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]"

srun_tool "$1" "$2" test.py "$3" "$4" --launcher="slurm" "${@:5}"
