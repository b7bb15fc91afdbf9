#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG [CHECKPOINT] GPUS [test.py args...]
# CHECKPOINT may be omitted for training-free configs:
#   bash tools/dist_test.sh CONFIG GPUS [args...]
CONFIG=$1
if [[ "$2" =~ ^[0-9]+$ ]]; then
    CHECKPOINT=""
    GPUS=$2
    shift 2
else
    CHECKPOINT=$2
    GPUS=$3
    shift 3
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
torchrun --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS --master_port=$PORT \
    $(dirname "$0")/test.py $CONFIG $CHECKPOINT --launcher pytorch "$@"
