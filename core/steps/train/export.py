"""Export a finished run: the LoRA adapter folder (for vLLM --enable-lora / PEFT) or merged weights."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CoreError
from core.steps.train import files, ingest

if TYPE_CHECKING:
    from core.store import Store


def export(store: Store, run_id: str, out: str | Path, merged: bool = False) -> dict[str, Any]:
    """Copy the adapter to `out`, or merge it into the base weights and save a transformers folder."""
    run = ingest.sync(store, run_id)
    if run["state"] != "done":
        raise CoreError(f"run {run_id} is {run['state']}: only a finished run has an adapter",
                        hint="wait for it, or resume it")
    adapter = Path((run.get("summary") or {}).get("adapter_dir") or Path(run["run_dir"]) / files.ADAPTER)
    if not (adapter / "adapter_config.json").is_file():
        raise CoreError(f"the adapter of run {run_id} is missing ({adapter})", hint="the run folder was moved or deleted")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise CoreError(f"{out} exists and is not empty", hint="choose a new folder")
    if not merged:
        shutil.copytree(adapter, out, dirs_exist_ok=True)
        return {"run": run_id, "out": str(out), "kind": "adapter"}
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.steps.train.data import load_tokenizer

    spec = files.read_json(Path(run["run_dir"]) / files.CONFIG) or {}
    folder = spec["base"]["folder"]
    dtype = torch.float32 if not torch.cuda.is_available() else (
        torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    load_tokenizer(str(adapter)).save_pretrained(out)
    return {"run": run_id, "out": str(out), "kind": "merged"}
