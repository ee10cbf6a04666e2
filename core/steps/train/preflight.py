"""Pre-flight: what a run will train on and whether the machine can take it, before anything starts.

Token lengths of the set against the limits (pairs dropped / truncated, by index), the GPU (name,
memory, compute capability, whether another process is using it), the backend and precision that
will run, a rough memory and time estimate, and free disk for checkpoints. GPU facts come from
`nvidia-smi` so the dashboard process never creates a CUDA context of its own.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.steps.train.config import TrainConfig
    from core.store import Store

# Training throughput actually reached by 4-bit LoRA training (dequantisation, checkpointing, small batches),
# by compute capability: ~10% of the fp16/bf16 tensor peak; V100 calibrated on the seed run (~4 h, Unsloth).
_EFFECTIVE_TFLOPS = {7.0: 12.0, 7.5: 7.0, 8.0: 45.0, 8.6: 10.0, 8.9: 20.0, 9.0: 110.0}
CPU_EFFECTIVE_TFLOPS = 0.05


def gpus() -> list[dict[str, Any]]:
    """Every NVIDIA GPU nvidia-smi sees: name, memory (GB), used (GB), compute capability."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,name,memory.total,memory.used,compute_cap",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 5:
            try:
                found.append({"index": int(parts[0]), "name": parts[1], "memory_gb": round(float(parts[2]) / 1024, 1),
                              "used_gb": round(float(parts[3]) / 1024, 1), "compute": float(parts[4])})
            except ValueError:
                continue
    return found


def backend_for(config: TrainConfig, gpu: dict[str, Any] | None) -> str:
    """What the worker will pick (it decides again where it runs; the run records what ran)."""
    if config.backend == "cpu" or gpu is None:
        return "cpu"
    if config.backend in ("auto", "unsloth") and config.num_processes == 1 and importlib.util.find_spec("unsloth") is not None:
        return "unsloth"
    return "trl"


def precision_for(backend: str, gpu: dict[str, Any] | None) -> str:
    if backend == "cpu" or gpu is None:
        return "fp32"
    return "bf16" if gpu["compute"] >= 8.0 else "fp16"  # V100 (7.0) and T4 (7.5) have no bf16


def model_size(folder: str) -> dict[str, Any]:
    """Parameter count (from the weight files) and the shape numbers the estimate needs."""
    cfg = json.loads((Path(folder) / "config.json").read_text("utf-8"))
    cfg = cfg.get("text_config", cfg)
    n, modules = 0, set()
    for f in Path(folder).glob("*.safetensors"):
        try:
            from safetensors import safe_open

            with safe_open(str(f), "pt") as st:
                for k in st.keys():
                    shape = st.get_slice(k).get_shape()
                    n += math.prod(shape)
                    modules.update(k.split(".")[:-1])
        except Exception:
            n += f.stat().st_size // 2
    if not n:
        n = sum(f.stat().st_size for f in Path(folder).glob("*.bin")) // 2
    return {"params": int(n), "hidden": cfg.get("hidden_size", 0), "layers": cfg.get("num_hidden_layers", 0),
            "vocab": cfg.get("vocab_size", 0), "intermediate": cfg.get("intermediate_size", 0),
            "modules": sorted(modules)}


def estimate(config: TrainConfig, size: dict[str, Any], pairs: int, mean_tokens: float, longest: int,
             backend: str, gpu: dict[str, Any] | None) -> dict[str, Any]:
    """Rough memory (GB, peak at the longest pair) and time (s) for the whole run.

    Memory: base weights (0.56 B/param in 4-bit, 2 in fp16/bf16, 4 on CPU) + LoRA weights, grads and
    AdamW state + activations (with checkpointing one layer's worth plus each layer's input) +
    logits: TRL upcasts the chosen+rejected logits to float32 for log-softmax (≈ 3 × 4 B per token and
    vocabulary entry); Unsloth computes them in chunks (counted as 10%). Time: ≈ 8 × params FLOPs per
    trained token (forward, backward, recomputation) at the card's effective throughput.
    """
    n, h, layers, vocab, inter = (size[k] for k in ("params", "hidden", "layers", "vocab", "intermediate"))
    cuda = backend != "cpu"
    per_param = (0.56 if config.load_in_4bit else 2.0) if cuda else 4.0
    act_bytes = 2 if cuda else 4
    weights = n * per_param
    lora = config.lora_r * (h + inter) * layers * len(config.target_modules) * 16  # fp32 weight, grad, 2 AdamW moments
    seqs = 2 * config.per_device_train_batch_size
    length = min(longest, config.max_length)
    per_layer_inputs = seqs * length * h * act_bytes * layers
    one_layer = seqs * length * (6 * h + 3 * inter) * act_bytes * (1 if config.gradient_checkpointing else layers)
    logits = seqs * length * vocab * 12 * (0.1 if backend == "unsloth" else 1.0)
    overhead = 1.0e9 if cuda else 0.3e9
    memory = (weights + lora + per_layer_inputs + one_layer + logits + overhead) / 1e9
    steps = planned_steps(config, pairs)
    tokens = pairs * config.num_train_epochs * mean_tokens if config.max_steps < 0 else \
        steps * config.per_device_train_batch_size * config.num_processes * config.gradient_accumulation_steps * mean_tokens
    tflops = _EFFECTIVE_TFLOPS.get(gpu["compute"], 25.0) if (cuda and gpu) else CPU_EFFECTIVE_TFLOPS
    speedup = 2.0 if backend == "unsloth" else 1.0
    seconds = 8 * n * tokens / (tflops * 1e12 * speedup * (config.num_processes if cuda else 1))
    return {"memory_gb": round(memory, 1), "seconds": round(seconds), "steps": steps, "tokens": int(tokens),
            "weights_gb": round(weights / 1e9, 2), "logits_gb": round(logits / 1e9, 2)}


def planned_steps(config: TrainConfig, pairs: int) -> int:
    """Optimizer steps as transformers' Trainer counts them."""
    if config.max_steps > 0:
        return config.max_steps
    batches = math.ceil(pairs / (config.per_device_train_batch_size * config.num_processes))
    per_epoch = max(batches // config.gradient_accumulation_steps + int(batches % config.gradient_accumulation_steps > 0), 1)
    return math.ceil(config.num_train_epochs * per_epoch)


def _stats(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"max": 0, "mean": 0, "p95": 0}
    ordered = sorted(values)
    return {"max": ordered[-1], "mean": round(statistics.fmean(ordered), 1),
            "p95": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]}


def preflight(store: Store, config: TrainConfig, prepared: dict[str, Any] | None = None,
              run_root: Path | None = None) -> dict[str, Any]:
    """Everything the page's pre-flight panel and `train preflight` show. Nothing starts."""
    from core.steps.train import data, record

    prepared = prepared or data.prepare(store, config)
    base = prepared["base"]
    found = gpus()
    gpu = found[0] if found else None
    backend = backend_for(config, gpu)
    lengths = prepared["lengths"]
    kept = {r["idx"] for r in prepared["rows"] + prepared["heldout"]}
    seq = [max(x["chosen"], x["rejected"]) + x["prompt"] for x in lengths if x["idx"] in kept]
    mean_tokens = statistics.fmean([r["tokens"] for r in prepared["rows"]]) if prepared["rows"] else 0
    size = model_size(base.folder)
    est = estimate(config, size, len(prepared["rows"]), mean_tokens, max(seq, default=0), backend, gpu)
    root = run_root or record.runs_root(store)
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), Path("/"))
    free_gb = round(shutil.disk_usage(probe).free / 1e9, 1)
    lora_params = config.lora_r * (size["hidden"] + size["intermediate"]) * size["layers"] * len(config.target_modules)
    # Each checkpoint: LoRA weights (fp32) + AdamW moments (2 × fp32); plus the final adapter; 50% slack.
    need_disk = round(lora_params * 12 * (config.save_total_limit + 1) * 1.5 / 1e9 + 0.05, 2)
    warnings = []
    missing = [m for m in config.target_modules if size["modules"] and m not in size["modules"]]
    if missing:
        linear = sorted(m for m in size["modules"] if m.endswith("_proj") or m in ("fc1", "fc2", "c_attn", "c_proj"))
        warnings.append(f"target_modules {missing} are not in {base.name} (its projections: {', '.join(linear) or '?'})")
    if not prepared["rows"]:
        warnings.append("no pair is left to train on: raise max_prompt_length / max_length or use long_prompts=truncate")
    if not prepared["heldout"] and config.heldout_fraction > 0 and prepared["rows"]:
        warnings.append("no pair is held out (the set is too small): nothing will show whether the run learned")
    if prepared["dropped"]:
        warnings.append(f"{len(prepared['dropped'])} pair(s) will be dropped (listed below)")
    if prepared["truncated"]:
        warnings.append(f"{len(prepared['truncated'])} pair(s) will be truncated (listed below)")
    if gpu and est["memory_gb"] > gpu["memory_gb"] - gpu["used_gb"]:
        warnings.append(f"estimated {est['memory_gb']} GB exceeds the GPU's free {gpu['memory_gb'] - gpu['used_gb']:.1f} GB: "
                        "lower max_length, use load_in_4bit, or install Unsloth")
    if gpu and gpu["used_gb"] > 1.0:
        warnings.append(f"the GPU already has {gpu['used_gb']} GB in use by another process")
    if free_gb < need_disk:
        warnings.append(f"only {free_gb} GB of free disk for checkpoints")
    if config.num_processes > 1 and backend != "cpu" and len(found) < config.num_processes:
        warnings.append(f"num_processes {config.num_processes} needs as many GPUs; {len(found)} found")
    if config.num_processes > 1 and backend == "cpu":
        warnings.append(f"{config.num_processes} processes on a CPU share its cores: a trial of the multi-GPU path, "
                        "not faster")
    busy = record.live_runs(store)
    if busy and backend != "cpu":
        warnings.append(f"run {busy[0]} is training on this GPU: a second run is refused until it ends")
    return {
        "set": prepared["set"], "base": {"name": base.name, "folder": base.folder, "params": size["params"]},
        "template": prepared["template"],
        "pairs": prepared["set"]["pairs"], "kept": len(kept),
        "train_pairs": len(prepared["rows"]), "heldout_pairs": len(prepared["heldout"]),
        "dropped": prepared["dropped"], "truncated": prepared["truncated"],
        "tokens": {"prompt": _stats([x["prompt"] for x in lengths]), "chosen": _stats([x["chosen"] for x in lengths]),
                   "rejected": _stats([x["rejected"] for x in lengths]),
                   "limits": {"max_length": config.max_length, "max_prompt_length": config.max_prompt_length,
                              "max_completion_length": config.max_completion_length}},
        "missing_modules": missing, "gpu": gpu, "gpus": len(found), "backend": backend, "precision": precision_for(backend, gpu),
        "estimate": est | {"disk_gb": need_disk}, "disk_free_gb": free_gb, "warnings": warnings,
        "processes": config.num_processes,
        "effective_batch": config.per_device_train_batch_size * config.num_processes * config.gradient_accumulation_steps,
    }
