#!/usr/bin/env bash
# Create ./.venv with the verified mmuol stack. Idempotent: a second run with
# unchanged requirements returns in a second; mmcv is built from source once
# and then reused from pip's wheel cache (torch stays pinned, so the cached
# wheel stays valid).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
PY=$VENV/bin/python
REQ_HASH=$(cat setup.py requirements/*.txt tools/setup_env.sh | sha256sum | cut -c1-16)
STAMP=$VENV/.mmuol-env-$REQ_HASH

if [ -f "$STAMP" ] && $PY -c "import mmcv.ops, mmdet, mmseg, mmuol" 2>/dev/null; then
    exit 0
fi
start=$(date +%s)
echo "[setup_env] creating/updating $VENV (first run: downloads torch, builds mmcv once)"
[ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
C="-c requirements/constraints.txt"
# pip, quiet, without the machine's "Location ... is ignored" index noise.
pipq() {
    "$PY" -m pip --disable-pip-version-check install -q "$@" 2>&1 \
        | { grep -v "^WARNING: Location '.*' is ignored" || true; }
    return "${PIPESTATUS[0]}"
}
pipq -U pip wheel "setuptools<82"
pipq $C torch torchvision numpy
if ! $PY -c "import mmcv.ops" 2>/dev/null; then
    echo "[setup_env] installing mmcv 2.1.0 (source build on a cold cache: ~8 min on 2 cores)"
    # --no-build-isolation: mmcv's setup.py must see the installed torch.
    # ninja (on PATH) lets torch's extension builder compile in parallel.
    pipq ninja
    PATH="$PWD/$VENV/bin:$PATH" MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} \
        pipq --no-build-isolation $C mmcv==2.1.0
fi
pipq $C -r requirements/runtime.txt -r requirements/tests.txt -r requirements/lint.txt
# openmim without its opendatalab dependency (which pins an old setuptools).
pipq $C --no-deps openmim==0.3.9
pipq $C model-index click colorama tabulate pandas rich requests
pipq $C --no-deps --no-build-isolation -e . >/dev/null
# A PEP 660 editable install leaves no mmuol/ folder in site-packages, where
# mim (`mim search/train`) looks for mmuol/.mim; point one at the checkout.
SITE=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
[ -e "$SITE/mmuol" ] || ln -s "$PWD/mmuol" "$SITE/mmuol"
$PY -c "import mmcv.ops, mmdet, mmseg, mmuol; print('[setup_env] ok: mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__)"
rm -f $VENV/.mmuol-env-*
touch "$STAMP"
echo "[setup_env] done in $(( $(date +%s) - start )) s"
