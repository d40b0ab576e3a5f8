#!/usr/bin/env bash
# Distributed training on one or more nodes with torchrun.
#
# Usage: bash tools/dist_train.sh CONFIG GPUS [train.py args...]
#
# Environment (defaults in brackets): NNODES [1], NODE_RANK [0], PORT [29500],
# MASTER_ADDR [127.0.0.1]. GPUS is the number of processes per node; on a machine
# without a GPU they train on the CPU over gloo (see hivit_mm/utils/compat.py).
if [ $# -lt 2 ]; then
    echo "Usage: bash $0 CONFIG GPUS [train.py args...]" >&2
    exit 1
fi

CONFIG=$1
GPUS=$2
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
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
