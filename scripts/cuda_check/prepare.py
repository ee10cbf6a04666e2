"""CUDA check, step 1 (any machine with the project venv): training run folders made by the launcher's own
`start()` with the worker spawn held back, for a small random Qwen3 (hidden 256, 4 layers).

Then copy the repo (with .gpu/) to a CUDA machine and run `bash scripts/cuda_check/run.sh` there: it
trains each folder with `python -m core.steps.train.worker` (4-bit bf16, 4-bit fp16, bf16), resumes one,
and generates with the 4-bit base + trained adapter through the local provider.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

RUNS = {"bf16-4bit": {"load_in_4bit": True, "optim": "adamw_8bit"},
        "fp16-4bit": {"load_in_4bit": True, "optim": "paged_adamw_8bit"},
        "bf16-full": {"load_in_4bit": False, "optim": "adamw_torch"}}


def small_qwen(folder: Path) -> None:
    import transformers

    from tests.tiny_models import build_tiny_qwen

    original = transformers.Qwen3Config

    def bigger(**kw):
        kw.update(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=64)
        return original(**kw)

    transformers.Qwen3Config = bigger
    try:
        build_tiny_qwen(folder)
    finally:
        transformers.Qwen3Config = original


def main() -> None:
    from core import models
    from core.steps.train import launcher, record
    from core.steps.train.config import TrainConfig
    from core.store import Store
    from tests.trainhelp import make_set, pair

    out = ROOT / ".gpu"
    (out / "runs").mkdir(parents=True, exist_ok=True)
    model = out / "qwen-small"
    if not model.exists():
        small_qwen(model)
    store = Store(":memory:")
    make_set(store, "gpu-set", [pair(i) for i in range(12)])
    models.add_model(store, "small", "local", str(model), params={"max_tokens": 16})
    launcher._spawn = lambda run_dir: (0, 0.0)  # the CUDA machine runs the worker itself
    record.runs_root = lambda _store: out / "runs"
    for name, extra in RUNS.items():
        cfg = TrainConfig(set_name="gpu-set", base_model="small", max_steps=4, max_length=256, max_prompt_length=160,
                          max_completion_length=64, gradient_accumulation_steps=2, learning_rate=1e-4, save_steps=2,
                          warmup_ratio=0.0, backend="auto", gradient_checkpointing=True, seed=3407 + len(name), **extra)
        run_id, _ = launcher.start(store, cfg)
        target = out / "runs" / name
        if target.exists():
            shutil.rmtree(target)
        (out / "runs" / run_id).rename(target)
        print(f"{name}: {target}")


if __name__ == "__main__":
    main()
