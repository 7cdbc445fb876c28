#!/usr/bin/env bash
# The GPU check of issues 17 and 19, in one go (about 8 minutes; 14 if every step ran to its
# time limit) on a machine with CUDA torch
# (2.11 or newer) and CUDA JAX. It writes $OUT/summary.md: the device, the tests marked `gpu`,
# both backends' training MFU at ~124M parameters in bf16 at seq 1024 (torch compiled), the
# measured micro batch of train.micro_batch_size=auto, and a smoke grid through the local
# launcher with every GPU's peak utilisation while it ran. Copy its rows into bench/RESULTS.md
# with the date and the device named.
#
#   bash bench/gpu_check.sh             # on the GPU machine; output under $OUT (default /tmp/gpu_check)
#   bash bench/gpu_check.sh --dry-run   # the same steps on a CPU at toy sizes (tests/test_gpu_check.py)
#
# Packages the machine lacks (flax, optax, orbax-checkpoint, hydra-core, ...) can be carried as
# wheels in .whl/ and are installed from there first, offline. Each step has its own time limit;
# one that fails is marked so in the summary and the others still run. Exit status: the number of
# failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.md"
FAILED=0
SAMPLER=
# A second check into the same $OUT measures again: finished runs and the cached micro batch of a
# first one would otherwise be reused (the corpus cache is kept: it is data, not a measurement).
rm -rf "$OUT"/auto1 "$OUT"/auto2 "$OUT"/grid "$OUT"/cache/micro_batch.json "$OUT"/utilization.csv
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if (( DRY )); then
    # (torch.compile left out: on a CPU it takes longer than the rest of the dry run together)
    DEVICE=cpu; SHAPE=tiny; BATCH=4; SEQ=64; STEPS=5; COMPILE=; export LAB_GPU_TESTS_ON_CPU=1
    GRID_ARGS=(scale=smoke model.vocab_size=384 corpus.train_words=40000 corpus.val_words=4000
               corpus.pairs_per_phenomenon=20 train.seq_len=32 train.batch_size=4 train.eval_tokens=2048
               train.threads=1 grid.sizes=[3.0e4,1.3e5] grid.budgets=[2560,5120] grid.report=false)
    AUTO_ARGS=(scale=smoke model.params=3e4 model.vocab_size=384 corpus.train_words=40000 corpus.val_words=4000
               corpus.pairs_per_phenomenon=20 train.seq_len=32 train.batch_size=8 train.tokens=2560
               train.eval_tokens=2048 train.threads=1)
else
    DEVICE=cuda; SHAPE=gpt2-small; BATCH=16; SEQ=1024; STEPS=200; COMPILE=--compile
    GRID_ARGS=(scale=smoke)
    AUTO_ARGS=(scale=gpu model.params=1.24e8 train.tokens=131072 corpus.train_words=400000 corpus.val_words=20000
               corpus.vocab_size=8192 model.vocab_size=8192 train.eval_tokens=65536)
fi

# step NAME LIMIT_S COMMAND...: runs it with its output in $OUT/NAME.txt, and one summary line.
step() {
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    if (( rc == 0 )); then
        echo "- $name: ok in $((SECONDS - start)) s" >> "$SUMMARY"
    else
        echo "- $name: FAILED (exit $rc) in $((SECONDS - start)) s; see $name.txt" >> "$SUMMARY"
        FAILED=$((FAILED + 1))
    fi
}

{
    echo "# GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)$( (( DRY )) && echo ', dry run on the CPU' )"
    echo
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
    fi
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
    python3 -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tail -1
    echo
    echo "## Steps"
} > "$SUMMARY"

step tests 180 python3 -m pytest -q -n 0 -p no:cacheprovider -m gpu tests
# One backend per process: each allocator keeps the device to itself while it is timed.
step mfu_torch 150 python3 bench/mfu.py --backends torch $COMPILE --shape "$SHAPE" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS"
step mfu_jax 150 python3 bench/mfu.py --backends jax --shape "$SHAPE" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS"
# train.micro_batch_size=auto: measured on the first start, read from the cache on the second.
step micro_batch_auto 180 bash -c "for i in 1 2; do python3 experiments/run.py ${AUTO_ARGS[*]} train.device=$DEVICE \
    train.micro_batch_size=auto train.progress=lines out_dir=$OUT/auto\$i corpus.cache_dir=$OUT/cache/corpora || exit 1; done"
# A smoke grid through the local launcher, one run per GPU, sampling every GPU's utilisation.
if command -v nvidia-smi > /dev/null && (( ! DRY )); then
    nvidia-smi --query-gpu=index,utilization.gpu --format=csv,noheader,nounits -l 1 > "$OUT/utilization.csv" &
    SAMPLER=$!
fi
step grid 180 python3 experiments/run.py grid=token_budget "${GRID_ARGS[@]}" train.device=$DEVICE \
    launcher.poll_s=0.2 out_dir="$OUT/grid" corpus.cache_dir="$OUT/cache/corpora"
[[ -n "${SAMPLER:-}" ]] && kill "$SAMPLER" 2> /dev/null

{
    echo
    echo "## Figures"
    grep -h "tokens/s, MFU" "$OUT/mfu_torch.txt" "$OUT/mfu_jax.txt" 2> /dev/null | sed 's/^ */- /'
    grep -h "micro_batch_size=auto:" "$OUT/micro_batch_auto.txt" 2> /dev/null | sed 's/^/- /'
    grep -hE "^[0-9]+ (passed|failed)|passed|failed" "$OUT/tests.txt" 2> /dev/null | tail -1 | sed 's/^/- tests: /'
    grep -h "^compute:" "$OUT/grid.txt" 2> /dev/null | sed 's/^/- grid /'
    if [[ -s "$OUT/utilization.csv" ]]; then
        echo "- peak utilisation per GPU during the grid (%):" \
            "$(sort -t, -k1,1n -k2,2n "$OUT/utilization.csv" | awk -F', *' '{peak[$1]=$2} END {for (g in peak) printf "gpu%s %s  ", g, peak[g]}')"
    fi
} >> "$SUMMARY"
cat "$SUMMARY"
exit "$FAILED"
