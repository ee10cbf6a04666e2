"""Seconds per step of the training worker vs a plain TRL ORPO script, side by side in one run.

Both train the same small random Qwen3 (built offline) on the same pairs with the same settings
(ORPO beta 0.8, batch 1, grad-accum 2, LoRA r 16 on gate/up/down_proj, logging every step, no
checkpoint), each in its own fresh process, alternating A/B so machine load hits both alike. Each
reports the Trainer's own train_runtime and the CPU time (all threads) of its training loop; printed, for
both: the median of the per-round ratios worker ÷ plain (each pair ran back to back) and the ratio of
the medians (goal ≤ 1.05). On a shared machine the CPU-time ratio is the steadier one.

    python bench/bench_train.py [--rounds 3] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PLAIN = r'''
import json, sys, time
from pathlib import Path
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.experimental.orpo import ORPOConfig, ORPOTrainer

run_dir = Path(sys.argv[1])
cuda = len(sys.argv) > 2 and sys.argv[2] == "cuda"
spec = json.loads((run_dir / "config.json").read_text())
cfg, folder = spec["config"], spec["base"]["folder"]
rows = [json.loads(l) for l in (run_dir / "pairs.jsonl").read_text().splitlines()]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, **({"dtype": "bfloat16", "device_map": {"": 0}} if cuda else {}))
args = ORPOConfig(output_dir=str(run_dir / "out"), beta=cfg["beta"], learning_rate=cfg["learning_rate"],
                  per_device_train_batch_size=1, gradient_accumulation_steps=cfg["gradient_accumulation_steps"],
                  max_steps=cfg["max_steps"], max_length=cfg["max_length"], lr_scheduler_type="cosine",
                  warmup_steps=cfg["warmup_ratio"], seed=cfg["seed"], data_seed=cfg["seed"], logging_steps=1,
                  save_strategy="steps", save_steps=cfg["save_steps"], report_to=[], disable_tqdm=True,
                  remove_unused_columns=False, bf16=cuda, fp16=False, use_cpu=not cuda, optim="adamw_torch",
                  gradient_checkpointing=cfg["gradient_checkpointing"], dataloader_num_workers=0)
trainer = ORPOTrainer(model=model, args=args, processing_class=tok,
                      train_dataset=Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]),
                      peft_config=LoraConfig(r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=0.0,
                                             target_modules=cfg["target_modules"], task_type="CAUSAL_LM"))
cpu0 = time.process_time()
out = trainer.train()
print("RESULT " + json.dumps({"train_runtime": out.metrics["train_runtime"], "steps": trainer.state.global_step,
                              "train_cpu_s": time.process_time() - cpu0}))
'''


def build_model(folder: Path) -> Path:
    """A random Qwen3 big enough that a step is compute, not bookkeeping (hidden 256, 4 layers)."""
    import torch
    from tiny_models import build_tiny_qwen
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    build_tiny_qwen(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=len(tok), hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4, head_dim=32, max_position_embeddings=2048,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
                         tie_word_embeddings=True)
    Qwen3ForCausalLM(config).save_pretrained(folder)
    return folder


def make_run_dir(root: Path, name: str, model: Path, steps: int, cuda: bool = False) -> Path:
    from core.steps.train import data, files
    from core.steps.train.config import TrainConfig

    cfg = TrainConfig(set_name="bench", base_model=str(model), max_steps=steps, gradient_accumulation_steps=2,
                      max_length=512, max_prompt_length=384, max_completion_length=128, learning_rate=1e-4,
                      warmup_ratio=0.1, save_steps=10_000, backend="trl" if cuda else "cpu", gradient_checkpointing=False,
                      load_in_4bit=False, optim="adamw_torch")
    tok = data.load_tokenizer(str(model))
    rows = []
    for i in range(16):
        msgs = [{"role": "system", "content": "수능 문제를 풀어라."},
                {"role": "user", "content": f"다음 수능 문제를 풀어 주세요. 문제 {i}: " + "윗글의 내용과 일치하지 않는 것은? " * (4 + i % 5)}]
        prompt, _ = data.render_prompt(tok, msgs, False, None)
        rows.append({"idx": i, "pair_id": None, "prompt": prompt,
                     "chosen": "지문과 <보기>에 근거하여 판단한다. " * 6 + '{"Answer":"3"}',
                     "rejected": "법률행위는 의사표시를 요소로 한다. " * 6 + f'{{"Answer":"{i % 5 + 1}"}}', "tokens": 0})
    run_dir = root / name
    run_dir.mkdir(parents=True)
    files.write_json(run_dir / files.CONFIG, {
        "run_id": name, "config": cfg.model_dump(mode="json"),
        "base": {"name": "bench", "model_id": str(model), "folder": str(model), "params": {}, "registered": False},
        "template": data.template_record(tok, "chat", False, None)})
    data.write_pairs(run_dir / files.PAIRS, rows)
    return run_dir


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRL_EXPERIMENTAL_SILENCE="1",
                TOKENIZERS_PARALLELISM="false")


def run_worker(run_dir: Path) -> tuple[float, float]:
    """(wall seconds per step, CPU seconds per step) of the training loop."""
    from core.steps.train import files

    subprocess.run([sys.executable, "-m", "core.steps.train.worker", str(run_dir)], cwd=ROOT, env=env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = files.read_json(run_dir / files.STATUS)
    assert status["state"] == "done", status
    return status["train_runtime"] / status["step"], status["train_cpu_s"] / status["step"]


def run_plain(run_dir: Path) -> tuple[float, float]:
    cuda = (json.loads((run_dir / "config.json").read_text())["config"]["backend"] == "trl")
    out = subprocess.run([sys.executable, "-c", PLAIN, str(run_dir), "cuda" if cuda else "cpu"], cwd=ROOT, env=env(), check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    return result["train_runtime"] / result["steps"], result["train_cpu_s"] / result["steps"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cuda", action="store_true", help="both on the GPU in bf16 (LoRA on a bf16 base, no 4-bit)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        model = build_model(root / "model")
        worker, plain = [], []
        for r in range(args.rounds):
            order = [("worker", run_worker, worker), ("plain", run_plain, plain)]
            for name, fn, sink in (order if r % 2 == 0 else order[::-1]):
                t = time.monotonic()
                sink.append(fn(make_run_dir(root, f"{name}-{r}", model, args.steps, args.cuda)))
                print(f"round {r + 1} {name:>6}: {sink[-1][0]:.3f} s/step wall, {sink[-1][1]:.3f} CPU-s/step "
                      f"({time.monotonic() - t:.0f} s with start-up)", file=sys.stderr)
        out = {"steps": args.steps, "rounds": args.rounds, "device": "cuda" if args.cuda else "cpu"}
        for i, kind in ((0, "wall"), (1, "cpu")):
            w, p = statistics.median(x[i] for x in worker), statistics.median(x[i] for x in plain)
            # Each round's two runs ran back to back, so their ratio sees about the same machine load.
            out[kind] = {"worker_s_per_step": round(w, 4), "plain_trl_s_per_step": round(p, 4),
                         "ratio_of_medians": round(w / p, 3),
                         "median_paired_ratio": round(statistics.median(a[i] / b[i] for a, b in zip(worker, plain)), 3)}
        out["worker_all"] = [[round(v, 4) for v in x] for x in worker]
        out["plain_all"] = [[round(v, 4) for v in x] for x in plain]
        print(json.dumps(out))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
