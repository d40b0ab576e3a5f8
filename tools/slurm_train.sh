#!/usr/bin/env bash
# Training on a Slurm cluster.
#
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#     bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
#
# The environment is described in tools/misc/launch.sh.
source "$(dirname "$0")/misc/launch.sh"
[ $# -ge 4 ] || usage "PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]"

srun_tool "$1" "$2" train.py "$3" --work-dir="$4" --launcher="slurm" "${@:5}"
