#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG [CHECKPOINT] NPROC [test.py args...]
# CHECKPOINT may be omitted for training-free configs:
#   bash tools/dist_test.sh CONFIG NPROC [args...]
# NPROC processes (one per GPU). Without a GPU they run on the CPU with the
# gloo backend. The interpreter is ./.venv/bin/python when it exists (no need
# to activate the venv), else $PYTHON, else python.
CONFIG=$1
if [[ "$2" =~ ^[0-9]+$ ]]; then
    CHECKPOINT=""
    NPROC=$2
    shift 2
else
    CHECKPOINT=$2
    NPROC=$3
    shift 3
fi
if [[ -z "$CONFIG" || ! "$NPROC" =~ ^[0-9]+$ ]]; then
    echo "usage: bash $0 CONFIG [CHECKPOINT] NPROC [test.py args...]" >&2
    exit 2
fi
TOOLS="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$TOOLS")"
if [[ -z "$PYTHON" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$ROOT":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run --nnodes=$NNODES --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR --nproc_per_node=$NPROC --master_port=$PORT \
    "$TOOLS/test.py" $CONFIG $CHECKPOINT --launcher pytorch "$@"
