# Launching tools/train.py or tools/test.py on several processes: what
# tools/dist_{train,test}.sh and tools/slurm_{train,test}.sh share. Sourced by them (not
# run), so that $0 stays the launcher the user called.

TOOLS_DIR="$(dirname "$0")"

# usage ARGUMENTS: print how the calling launcher is used, and exit 1.
usage() {
    echo "Usage: bash $0 $*" >&2
    exit 1
}

# torchrun_tool NPROC SCRIPT ARGS...: run tools/SCRIPT in NPROC processes per node with
# torchrun. Environment (defaults in brackets): NNODES [1], NODE_RANK [0], PORT [29500],
# MASTER_ADDR [127.0.0.1]. On a machine without a GPU the processes run on the CPU over
# gloo (see hivit_mm/utils/compat.py).
torchrun_tool() {
    PYTHONPATH="${TOOLS_DIR}/..":$PYTHONPATH \
    python -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="$1" \
        --master_port="${PORT:-29500}" \
        "${TOOLS_DIR}/$2" \
        "${@:3}"
}

# srun_tool PARTITION JOB_NAME SCRIPT ARGS...: run tools/SCRIPT as a Slurm job, one task
# per GPU. Environment: GPUS [8] tasks in all, GPUS_PER_NODE [min(GPUS, 8)],
# CPUS_PER_TASK [5], SRUN_ARGS extra srun options (word-split, e.g. '--qos=high').
srun_tool() {
    local gpus=${GPUS:-8}
    local gpus_per_node=${GPUS_PER_NODE:-$((gpus < 8 ? gpus : 8))}
    set -x
    PYTHONPATH="${TOOLS_DIR}/..":$PYTHONPATH \
    srun -p "$1" \
        --job-name="$2" \
        --gres=gpu:${gpus_per_node} \
        --ntasks=${gpus} \
        --ntasks-per-node=${gpus_per_node} \
        --cpus-per-task=${CPUS_PER_TASK:-5} \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        python -u "${TOOLS_DIR}/$3" "${@:4}"
}
