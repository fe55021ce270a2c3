#!/usr/bin/env bash
# One lent-GPU session (docs/training.md, "A GPU session"): train rerank-lens/minilm-l6-general on groups
# mined here, benchmark it on the GPU, distil rerank-lens/tiny-general from it. Everything it makes goes to
# $OUT as it is made (a call cut short still returns what was done), packed to fit the tool's file limits.
#
#   bash scripts/gpu/session.sh DEVICE_DIR DEADLINE_SECONDS
#
# DEVICE_DIR holds what `prepare` put there (backbone in float16, groups, benchmark candidates, wheels).
set -uo pipefail
D=${1:-.device}
DEADLINE=${2:-560}
OUT=${OUT:-/tmp/gpu-out}
W=/tmp/work
mkdir -p "$OUT" "$W"
exec > >(tee -a "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=true
left() { echo $((DEADLINE - SECONDS)); }
stamp() { echo "== [$SECONDS s] $*"; }
# Run a step until a deadline; SIGINT makes finetune keep its last checkpoint instead of losing the run.
until_deadline() { local budget=$1; shift; timeout -s INT -k 20 "$budget" "$@"; }

stamp "machine"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
if [ -d "$D/wheels" ]; then  # datasets (for the trainer) and the sentence-transformers the tests ran with
  arrow=$(python3 -c "import pyarrow; print(pyarrow.__version__.split('.')[0])")
  if [ "$arrow" -ge 24 ]; then set_dir=new; else set_dir=old; fi
  stamp "pyarrow major $arrow: wheels/$set_dir"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$D"/wheels/$set_dir/*.whl "$D"/wheels/*.whl || exit 3
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
python3 -c "import torch, transformers, sentence_transformers, datasets; print(torch.__version__, transformers.__version__, sentence_transformers.__version__, datasets.__version__)" || exit 4

cp -r "$D/backbone" "$W/backbone" && python3 scripts/gpu/portable.py full "$W/backbone"

stamp "train minilm-l6-general ($(left) s left)"
until_deadline $(( $(left) - 130 )) python3 -m reranker finetune --groups "$D/general.groups.json.gz" --base "$W/backbone" \
  --out "$W/general" --epochs 2 --max-length 256 --groups-per-step 32 --lr-encoder 7e-5 --lr-head 1e-3 \
  --warmup-ratio 0.05 --save-steps 250 --dataloader-workers 4
stamp "train exit $?"
[ -f "$W/general/model.safetensors" ] || exit 5
python3 scripts/gpu/portable.py pack "$W/general" "$W/general-pack"
tar -C "$W" -cf - general-pack | split -b 15M - "$OUT/general.tar."

if [ "$(left)" -gt 200 ]; then
  for batch in 32 128; do
    stamp "benchmark on the GPU, batch $batch ($(left) s left)"
    until_deadline 45 python3 -m benchmarks.cross_encoder --candidates "$D/candidates.json" --model "$W/general" \
      --device cuda --precision fp32 fp16 bf16 --batch-size $batch --json > "$OUT/gpu-benchmark-b$batch.json"
    stamp "benchmark exit $?"; cat "$OUT/gpu-benchmark-b$batch.json"
  done
fi

stamp "distil tiny-general ($(left) s left)"
# Scoring a whole pass with the teacher (389k pairs) took longer than the time left on 2026-11-26: the first
# DISTIL_GROUPS groups of the first pass are what a session has time for.
python3 - "$D/general.groups.json.gz" "$W/distil.groups.json.gz" "${DISTIL_GROUPS:-12000}" <<'EOF'
import sys
from reranker.mining import load_groups, save_groups
groups, meta = load_groups(sys.argv[1])
first_pass = groups[: meta.get("groups_per_pass", len(groups))][: int(sys.argv[3])]
save_groups(sys.argv[2], first_pass, {**meta, "groups_per_pass": len(first_pass)})
print(f"distilling on {len(first_pass)} of {len(groups)} groups")
EOF
until_deadline $(( $(left) - 15 )) python3 -m reranker finetune --groups "$W/distil.groups.json.gz" --teacher "$W/general" \
  --base "$W/general" --student-layers 3 --out "$W/tiny" --epochs 1 --max-length 256 --groups-per-step 32 \
  --lr-encoder 1e-4 --lr-head 1e-3 --warmup-ratio 0.05 --save-steps 60 --temperature 1 --dataloader-workers 4
stamp "distil exit $?"
if [ -f "$W/tiny/model.safetensors" ]; then
  python3 scripts/gpu/portable.py pack "$W/tiny" "$W/tiny-pack"
  tar -C "$W" -cf - tiny-pack | split -b 15M - "$OUT/tiny.tar."
fi
stamp "done"; ls -la "$OUT"
