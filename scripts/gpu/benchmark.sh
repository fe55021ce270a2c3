#!/usr/bin/env bash
# The speed checks of a lent GPU machine in one device call (benchmarks/README.md, "The same pairs on other
# hardware"): the project path against plain predict on the same saved SciFact pairs, on the GPU in each
# precision at batch 32 and 128, then on the machine's CPU cores (AMX where it has them). JSON to $OUT.
#
#   bash scripts/gpu/benchmark.sh CANDIDATES            # from the device tool, carrying CANDIDATES
#   DEVICE=cpu QUERIES=1 PYTHON=.venv/bin/python bash scripts/gpu/benchmark.sh runs/cand10.json   # a dry run here
#
# CANDIDATES comes from `python -m benchmarks.cross_encoder --dataset ../shared/datasets/scifact --queries 80
# --depth 50 --save-candidates FILE` (../shared does not travel to the device machine).
set -uo pipefail
C=${1:?usage: benchmark.sh CANDIDATES}
OUT=${OUT:-/tmp/gpu-out}
DEVICE=${DEVICE:-cuda}
QUERIES=${QUERIES:-80}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/benchmark.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
stamp() { echo "== [$SECONDS s] $*"; }

stamp "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
nproc; grep -o -m1 -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
"$PY" -c "import torch, transformers, sentence_transformers as s; print(torch.__version__, transformers.__version__, s.__version__)" || exit 4
for batch in 32 128; do
  stamp "$DEVICE, batch $batch"
  timeout 150 "$PY" -m benchmarks.cross_encoder --candidates "$C" --queries "$QUERIES" --depth 50 --device "$DEVICE" \
    --precision auto fp32 fp16 bf16 --batch-size "$batch" --json > "$OUT/$DEVICE-b$batch.json"
  stamp "exit $?"; "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); [print(x['path'], round(x['pairs_per_s'],1), round(x['speedup'],3), x['top10_agreement']) for x in r['rows']]" "$OUT/$DEVICE-b$batch.json"
done
stamp "cpu cores, auto"
timeout 150 "$PY" -m benchmarks.cross_encoder --candidates "$C" --queries 8 --depth 20 --device cpu --precision auto \
  --json > "$OUT/cpu-auto.json"
stamp "exit $?"; "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['precision'], r['speedup'], r['top10_agreement'])" "$OUT/cpu-auto.json"
