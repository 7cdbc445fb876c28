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
# Issue 19: train.micro_batch_size=auto measures the largest micro batch a 124M model takes at
# 128 x 1024 tokens per step, then reads it from the cache on a second start (no "auto:" line).
for attempt in 1 2; do
    timeout 120 python3 experiments/run.py scale=gpu model.params=1.24e8 train.tokens=131072 \
        train.micro_batch_size=auto corpus.train_words=400000 corpus.val_words=20000 corpus.vocab_size=8192 \
        model.vocab_size=8192 train.eval_tokens=65536 out_dir="$OUT/auto$attempt" 2>&1 | tail -5 \
        | tee -a "$OUT/micro_batch_auto.txt"
done
