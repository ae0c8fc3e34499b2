#!/usr/bin/env bash
# The checks only a CUDA machine can make, as one prepared run on a lent GPU machine (see benchmarks/README.md):
#   1. the grocery recipe fine-tuned on CUDA: a 4-run sweep in this process, then through the executor with --jobs 2
#      (two CPU workers for the datasets, one worker for the GPU that the fine-tuning runs ask for);
#   2. benchmarks/sd_throughput.py: Stable Diffusion 1.5's architecture (random weights) at 512 px.
# The GPU machine has torch, timm, transformers and accelerate; the other packages travel as wheels in .whl/ and the
# photos in .gpu/data/ (photos, white, a third of backgrounds), both ignored by git and named in the device call's carry.
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
# JOBS="2": only that sweep; NO_SD=1: no Stable Diffusion benchmark; DRY=1: a dry run of this script on any machine, with the project's own environment and tiny settings
PY=${PY:-python3}
if [ -z "${DRY:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 FRUIT_SYNTH_DATA=$PWD/.gpu/data
VALUES=${VALUES:-100,200}
EXTRA=${EXTRA:-}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
  $PY -c "import torch, timm, diffusers, distributed; print('torch', torch.__version__, 'timm', timm.__version__, 'diffusers', diffusers.__version__, 'distributed', distributed.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/gpu.log"
W=${WORK:-/tmp/work}
run_sweep() {  # $1: jobs
  local start=$(date +%s%N)
  timeout 170 $PY -m fruit_synth.cli sweep --profile grocery -p work_dir=$W/jobs$1 $EXTRA --vary n_per_class=$VALUES \
    --variants copy_paste --seeds 2 --train-mode finetune --jobs $1 --out $W/jobs$1/sweep
  echo "sweep --jobs $1: exit $?, wall $(( ($(date +%s%N) - start) / 1000000 )) ms"
  cat $W/jobs$1/sweep/sweep.csv
  grep -h '"device"' $W/jobs$1/sweep/runs/*/metrics.json | sort | uniq -c
}
for jobs in ${JOBS:-1 2}; do run_sweep $jobs 2>&1 | grep -v "^masks:" | tee -a "$OUT/gpu.log"; done
[ -n "${NO_SD:-}" ] && exit 0  # NO_SD=1: the sweeps only
[ -n "${DRY:-}" ] && SD="--device cpu --tiny" || SD="--compile-budget 90"
timeout 230 $PY benchmarks/sd_throughput.py $SD 2>&1 | tee -a "$OUT/gpu.log"
