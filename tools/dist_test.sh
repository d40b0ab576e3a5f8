#!/usr/bin/env bash
# Distributed testing on one or more nodes with torchrun.
#
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
#
# Environment (defaults in brackets): NNODES [1], NODE_RANK [0], PORT [29500],
# MASTER_ADDR [127.0.0.1]. GPUS is the number of processes per node; on a machine
# without a GPU they run on the CPU over gloo (see hivit_mm/utils/compat.py).
if [ $# -lt 3 ]; then
    echo "Usage: bash $0 CONFIG CHECKPOINT GPUS [test.py args...]" >&2
    exit 1
fi

CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
python -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
