#!/usr/bin/env bash
# CUDA check: the ORPO worker (TRL + PEFT + bitsandbytes 4-bit, bf16 and fp16) and the local provider on a GPU.
[ -d .whl ] && { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1; }  # offline machines: wheels carried in .whl/
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader
python3 -c "import torch, transformers, trl, peft, bitsandbytes, datasets; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'bnb', bitsandbytes.__version__, 'datasets', datasets.__version__)"
python3 - <<'PY'
import json, pathlib, os
for run in pathlib.Path(".gpu/runs").iterdir():
    p = run / "config.json"; c = json.loads(p.read_text())
    c["base"]["folder"] = c["base"]["model_id"] = os.path.abspath(".gpu/qwen-small")
    p.write_text(json.dumps(c, ensure_ascii=False))
PY
for r in bf16-4bit fp16-4bit bf16-full; do
  echo "=== $r"
  if [ $r = fp16-4bit ]; then export CSAT_TRAIN_PRECISION=fp16; else unset CSAT_TRAIN_PRECISION; fi
  timeout 200 python3 -m core.steps.train.worker .gpu/runs/$r > ${OUT:-/tmp}/$r.log 2>&1; echo "exit $?"
  tail -5 ${OUT:-/tmp}/$r.log
  python3 -c "import json;s=json.load(open('.gpu/runs/$r/status.json'));print({k:s.get(k) for k in ('state','backend','precision','step','max_steps','resumed_from','message','reason')})"
  tail -2 .gpu/runs/$r/metrics.jsonl
  ls .gpu/runs/$r/adapter 2>&1 | head -3
done
echo "=== resume: a second start of bf16-4bit with max_steps 6 continues from its checkpoint"
python3 - <<'PY'
import json; p=".gpu/runs/bf16-4bit/config.json"; c=json.load(open(p)); c["config"]["max_steps"]=6; json.dump(c, open(p,"w"))
PY
timeout 200 python3 -m core.steps.train.worker .gpu/runs/bf16-4bit > ${OUT:-/tmp}/resume.log 2>&1; echo "exit $?"; grep -i -m3 "resum" ${OUT:-/tmp}/resume.log; tail -1 .gpu/runs/bf16-4bit/metrics.jsonl
echo "=== local provider, 4-bit base + the trained adapter, on CUDA"
python3 - <<'PY'
import os
from core.models import Model, ModelParams
from core.providers.local import LocalProvider
from core.providers.base import GenParams
m = Model(name="t", provider="local", model_id=os.path.abspath(".gpu/qwen-small"), adapter=os.path.abspath(".gpu/runs/bf16-4bit/adapter"),
          params=ModelParams(load_in_4bit=True, max_tokens=8))
p = LocalProvider(m)
res = p._generate([[{"role": "user", "content": "다음 수능 문제를 풀어 주세요."}]] * 3, GenParams(max_tokens=8, temperature=0))
from core.providers.local import load
model, tok, _ = load(m.model_id, m.adapter, True)
print("device", model.device, "4bit", getattr(model, "is_loaded_in_4bit", None) or any("4bit" in type(x).__name__ for x in model.modules()))
print([(r.text[:40], r.output_tokens, r.finish_reason) for r in res])
PY
cp -r .gpu/runs/bf16-4bit/status.json ${OUT:-/tmp}/status-bf16-4bit.json 2>/dev/null; true
