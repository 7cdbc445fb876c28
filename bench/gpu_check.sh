#!/usr/bin/env bash
# The GPU check of issues 17 and 19, prepared to run in one go (at most ~8 minutes) on a machine
# with one CUDA GPU, CUDA torch and CUDA JAX. It records the device and both backends' training
# MFU at ~124M parameters, bf16, seq 1024 (bench/mfu.py); copy the printed rows into
# bench/RESULTS.md with the date and the device named.
#
#   bash bench/gpu_check.sh            # output also under $OUT (default /tmp/gpu_check)
#
# Packages the machine lacks (flax, optax, orbax-checkpoint, hydra-core, ...) can be carried as
# wheels in .whl/ and are installed from there first, offline.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -c "import torch, jax; print('torch', torch.__version__, torch.cuda.get_device_name(0)); print('jax', jax.__version__, jax.devices())" \
    2>&1 | tee -a "$OUT/device.txt"
# One backend per process: each allocator keeps the GPU to itself while it is timed.
timeout 200 python3 bench/mfu.py --backends torch 2>&1 | tee "$OUT/mfu_torch.txt"
timeout 200 python3 bench/mfu.py --backends jax 2>&1 | tee "$OUT/mfu_jax.txt"
