"""The training worker: `python -m core.steps.train.worker RUN_DIR`, one ORPO run in its own process.

It never opens the DuckDB store (DESIGN.md §3): it reads RUN_DIR/config.json and pairs.jsonl and
writes status.json, metrics.jsonl (one line per logged step), train.log (stdout/stderr, via the
launcher), checkpoints/ and adapter/. Started again on the same RUN_DIR it resumes from the last
complete checkpoint (model, optimizer, scheduler, RNG and data position), so a cancelled, crashed or
killed run continues where its last checkpoint left it.

Backends, picked here where the hardware is known: Unsloth when CUDA and unsloth are importable
(imported first, as it requires); else TRL's ORPO trainer + PEFT LoRA (+ bitsandbytes 4-bit) on CUDA;
else float32 on CPU. fp16 on GPUs without bf16 (compute < 8.0, e.g. V100), bf16 where supported.
A NaN loss stops the run and names the pairs of the offending step.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from core.steps.train import files, liveness
from core.steps.train.files import KEYS

# Under `accelerate launch` (data parallel) every process runs this file; only rank 0 writes the
# run folder's status, metrics and adapter.
MAIN = int(os.environ.get("RANK", "0")) == 0


class Status:
    """status.json, rewritten atomically on every change."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / files.STATUS
        previous = files.read_json(self.path) or {}
        self.data: dict[str, Any] = {"state": "starting", "pid": os.getpid(), "started_at": datetime.now().isoformat(),
                                     "seconds_before": float(previous.get("seconds_total") or 0.0),
                                     "attempt": int(previous.get("attempt") or 0) + 1}
        self.write()

    def set(self, **values: Any) -> None:
        self.data.update(values, updated_at=datetime.now().isoformat())
        self.write()

    def write(self) -> None:
        if MAIN:
            files.write_json(self.path, self.data)


def pick_backend(requested: str) -> tuple[str, str | None]:
    """(backend, why not the requested one)."""
    import torch

    cuda = torch.cuda.is_available()
    if requested == "cpu":
        return "cpu", None
    if not cuda:
        return "cpu", None if requested == "auto" else f"{requested} needs CUDA; none found"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # Unsloth trains on one GPU only
        return "trl", "unsloth is single-GPU: several processes train with TRL + PEFT" if requested == "unsloth" else None
    if requested in ("auto", "unsloth"):
        if importlib.util.find_spec("unsloth") is not None:
            return "unsloth", None
        if requested == "unsloth":
            return "trl", "unsloth is not installed (pip install -r requirements-gpu.txt)"
    return "trl", None


def precision(backend: str) -> str:
    """fp32 on CPU; on CUDA bf16 where supported (compute >= 8.0), else fp16 (V100, T4).

    CSAT_TRAIN_PRECISION=fp16|bf16 overrides (e.g. to rehearse a V100 run on a newer card)."""
    import torch

    if backend == "cpu":
        return "fp32"
    forced = os.environ.get("CSAT_TRAIN_PRECISION")
    if forced in ("fp16", "bf16"):
        return forced
    return "bf16" if torch.cuda.is_bf16_supported() and torch.cuda.get_device_capability()[0] >= 8 else "fp16"


def reason_for(exc: BaseException) -> str:
    """A plain reason for the most common failures."""
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        return "out of GPU memory: lower max_length, use load_in_4bit, or install Unsloth"
    if isinstance(exc, MemoryError):
        return "out of memory: lower max_length or per_device_train_batch_size"
    return text[:500]


def load_model(cfg: dict[str, Any], base: dict[str, Any], backend: str, prec: str, log: Any) -> tuple[Any, Any, Any, str]:
    """(model, tokenizer, peft_config or None, backend actually used)."""
    if backend == "unsloth":
        try:
            from unsloth import FastLanguageModel  # before transformers/trl/peft, as Unsloth requires

            try:  # older Unsloth patches TRL's preference trainers on request; newer ones on import
                from unsloth import PatchDPOTrainer

                PatchDPOTrainer()
            except ImportError:
                pass

            model, tok = FastLanguageModel.from_pretrained(
                model_name=base["folder"], max_seq_length=cfg["max_length"], dtype=None,
                load_in_4bit=cfg["load_in_4bit"])
            model = FastLanguageModel.get_peft_model(
                model, r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=cfg["lora_dropout"],
                target_modules=cfg["target_modules"], bias="none", random_state=cfg["seed"],
                use_gradient_checkpointing="unsloth" if cfg["gradient_checkpointing"] else False)
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            return model, tok, None, "unsloth"
        except Exception as exc:  # fall back rather than fail: the run records which backend ran
            log(f"Unsloth could not load the model ({type(exc).__name__}: {exc}); using TRL + PEFT")
            backend = "trl"
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from core.steps.train.data import load_tokenizer

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if backend == "trl":
        dtype = torch.bfloat16 if prec == "bf16" else torch.float16
        kwargs = {"dtype": dtype, "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}
        if cfg["load_in_4bit"]:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(base["folder"], **kwargs)
    tok = load_tokenizer(base["folder"])
    peft_config = LoraConfig(r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=cfg["lora_dropout"],
                             target_modules=cfg["target_modules"], bias="none", task_type="CAUSAL_LM")
    return model, tok, peft_config, backend


def orpo_args(cfg: dict[str, Any], run_dir: Path, backend: str, prec: str) -> Any:
    import dataclasses

    from trl.experimental.orpo import ORPOConfig

    names = {f.name for f in dataclasses.fields(ORPOConfig)}
    warmup = {"warmup_ratio": cfg["warmup_ratio"]} if "warmup_ratio" in names else {"warmup_steps": cfg["warmup_ratio"]}
    return ORPOConfig(
        output_dir=str(run_dir / files.CHECKPOINTS), beta=cfg["beta"], learning_rate=cfg["learning_rate"],
        per_device_train_batch_size=cfg["per_device_train_batch_size"],
        gradient_accumulation_steps=cfg["gradient_accumulation_steps"], num_train_epochs=cfg["num_train_epochs"],
        max_steps=cfg["max_steps"], max_length=cfg["max_length"], lr_scheduler_type=cfg["lr_scheduler_type"],
        weight_decay=cfg["weight_decay"], max_grad_norm=cfg["max_grad_norm"],
        optim=cfg["optim"] if backend != "cpu" else "adamw_torch", seed=cfg["seed"], data_seed=cfg["seed"],
        logging_steps=cfg["logging_steps"], save_strategy="steps", save_steps=cfg["save_steps"],
        save_total_limit=cfg["save_total_limit"], report_to=[], disable_tqdm=True, remove_unused_columns=False,
        bf16=prec == "bf16", fp16=prec == "fp16", use_cpu=backend == "cpu", dataloader_num_workers=0,
        gradient_checkpointing=cfg["gradient_checkpointing"], **warmup)


def make_trainer_class() -> type:
    from trl.experimental.orpo import ORPOTrainer

    class Trainer(ORPOTrainer):
        """ORPO that remembers which pairs each step saw (to name them when the loss goes NaN)."""

        window: list[int]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            self.window.extend(inputs.get("pair_idx") or [])
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return Trainer


class Heldout:
    """Scores the held-out pairs (base once, tuned before, every eval_steps and after) into
    heldout_scores.jsonl. A scoring that fails is recorded and never stops the run."""

    def __init__(self, run_dir: Path, cfg: dict[str, Any], status: Status, log: Any):
        self.path, self.cfg, self.status, self.log = run_dir / files.HELDOUT_SCORES, cfg, status, log
        self.rows = files.read_jsonl(run_dir / files.HELDOUT)
        lines = [ln for ln in files.read_jsonl(self.path) if not ln.get("error")]
        self.done = {(ln.get("which"), ln.get("step")) for ln in lines}
        base = next((ln for ln in lines if ln.get("which") == "base"), None)
        if base and "gen_tokens" in base:  # a resumed run measures lengths as its base was measured
            self.cfg = cfg | {"heldout_gen_tokens": base["gen_tokens"]}

    def run(self, model: Any, tok: Any, step: int, which: str) -> None:
        if not MAIN or not self.rows or (which, step) in self.done or (which == "base" and any(w == "base" for w, _ in self.done)):
            return
        from core.steps.train import heldout

        previous = self.status.data.get("state")
        self.status.set(state="scoring held-out", heldout_which=which)
        try:
            line = {"step": step, "which": which, **heldout.score(model, tok, self.rows, self.cfg, adapter=which == "tuned")}
        except Exception as exc:  # noqa: BLE001 - the check must not kill the training
            line = {"step": step, "which": which, "pairs": len(self.rows), "error": f"{type(exc).__name__}: {exc}"[:300]}
            self.log(f"held-out scoring failed: {line['error']}")
        self.done.add((which, step))
        if MAIN:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.log(f"held-out {which} @ step {step}: " + (line.get("error") or
                 f"accuracy {line['accuracy']:.3f}, margin {line['margin']:+.4f} on {line['pairs']} pairs"))
        self.status.set(state=previous)


def make_callback(run_dir: Path, status: Status, tokens: dict[int, int], trainer_ref: dict[str, Any]) -> Any:
    from transformers import TrainerCallback

    class Metrics(TrainerCallback):
        """metrics.jsonl + status.json on every log; stops on a NaN loss."""

        def __init__(self) -> None:
            self.t0 = self.t_last = time.monotonic()
            self.step_last = 0
            self.final: dict[str, Any] = {}

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = self.t_last = time.monotonic()
            self.step_last = state.global_step
            status.set(state="training", step=state.global_step, max_steps=state.max_steps)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            trainer = trainer_ref["trainer"]
            now = time.monotonic()
            if "train_runtime" in logs:  # the closing summary of train()
                self.final.update(logs)
                return
            if "loss" not in logs:
                return
            window, trainer.window = trainer.window, []
            dt, dsteps = now - self.t_last, state.global_step - self.step_last
            self.t_last, self.step_last = now, state.global_step
            row: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch,
                                   "elapsed_s": round(status.data["seconds_before"] + now - self.t0, 3),
                                   "steps_per_s": round(dsteps / dt, 4) if dt > 0 else None,
                                   "tokens_per_s": round(sum(tokens.get(i, 0) for i in window) / dt, 1) if dt > 0 else None,
                                   "pairs": window}
            try:
                import torch

                if torch.cuda.is_available():
                    row["gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 3)
            except Exception:
                pass
            for key, value in logs.items():
                row[KEYS.get(key, key)] = value
            if MAIN:
                with open(run_dir / files.METRICS, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            rate = (state.global_step - trainer_ref["start_step"]) / max(now - self.t0, 1e-9)
            eta = (state.max_steps - state.global_step) / rate if rate > 0 else None
            status.set(step=state.global_step, max_steps=state.max_steps, epoch=state.epoch,
                       seconds_total=row["elapsed_s"], eta_s=round(eta, 1) if eta is not None else None,
                       last={k: v for k, v in row.items() if k != "pairs"})
            loss = logs.get("loss")
            if isinstance(loss, float) and not math.isfinite(loss):
                trainer_ref["nan"] = {"step": state.global_step, "pairs": sorted(set(window))}
                control.should_training_stop = True
                control.should_save = False

        def on_step_end(self, args, state, control, **kw):
            every = trainer_ref["eval_steps"]
            if every and state.global_step % every == 0 and state.global_step < state.max_steps:
                trainer = trainer_ref["trainer"]
                trainer_ref["heldout"].run(trainer.model, trainer.processing_class, state.global_step, "tuned")

    return Metrics()


_LOCK_FD: int | None = None  # open for the whole life of the process: the proof it is alive


def run(run_dir: Path) -> int:
    global _LOCK_FD
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def log(msg: str) -> None:
        print(f"[worker] {msg}", flush=True)

    try:
        _LOCK_FD = liveness.inherited(run_dir)
        if _LOCK_FD is None and MAIN:  # under accelerate, rank 0 stands for the whole run
            _LOCK_FD = liveness.acquire(run_dir, wait_s=5.0)
    except liveness.Held:
        log(f"another worker holds {run_dir}: not starting a second one on the same run")
        return 3
    spec = json.loads((run_dir / files.CONFIG).read_text("utf-8"))
    cfg, base = spec["config"], spec["base"]
    previous = files.read_json(run_dir / files.STATUS) or {}
    if previous.get("state") == "done" and (run_dir / files.ADAPTER).is_dir():
        log(f"run {spec['run_id']} already finished ({previous.get('step')} steps): nothing to train")
        return 0
    if MAIN:
        files.write_json(run_dir / files.WORKER, {"pid": os.getpid(), "argv": sys.argv, "run_id": spec["run_id"],
                                                  "started_at": datetime.now().isoformat()})
    status = Status(run_dir)

    try:
        backend, note = pick_backend(cfg["backend"])
        if note:
            log(note)
        prec = precision(backend)
        status.set(state="loading", backend=backend, precision=prec)
        log(f"run {spec['run_id']}: {base['name']} on set {cfg['set_name']}, backend {backend}, {prec}")
        model, tok, peft_config, backend = load_model(cfg, base, backend, prec, log)
        status.set(backend=backend)
        import torch
        from datasets import Dataset

        torch.manual_seed(cfg["seed"])
        rows = [json.loads(line) for line in (run_dir / files.PAIRS).read_text("utf-8").splitlines() if line.strip()]
        if not rows:
            raise RuntimeError("no pairs to train on (all were dropped by the pre-flight check)")
        dataset = Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"],
                                      "pair_idx": r["idx"]} for r in rows])
        trainer_ref: dict[str, Any] = {"nan": None, "start_step": 0, "eval_steps": int(cfg.get("eval_steps") or 0),
                                       "heldout": Heldout(run_dir, cfg, status, log)}
        callback = None
        trainer_cls = make_trainer_class()
        trainer = trainer_cls(model=model, args=orpo_args(cfg, run_dir, backend, prec), train_dataset=dataset,
                              processing_class=tok, peft_config=peft_config)
        trainer.window = []
        trainer_ref["trainer"] = trainer
        tokens = {int(i): len(c) + len(r) for i, c, r in zip(trainer.train_dataset["pair_idx"],
                                                              trainer.train_dataset["chosen_input_ids"],
                                                              trainer.train_dataset["rejected_input_ids"])}
        callback = make_callback(run_dir, status, tokens, trainer_ref)
        trainer.add_callback(callback)
        checkpoint = files.last_checkpoint(run_dir)
        if checkpoint:
            trainer_ref["start_step"] = int(checkpoint.name.split("-")[-1])
            log(f"resuming from {checkpoint.name}")
        status.set(resumed_from=checkpoint.name if checkpoint else None)
        check = trainer_ref["heldout"]
        check.run(trainer.model, tok, 0, "base")  # before the first step the tuned model is the base (LoRA B = 0)
        cpu0 = time.process_time()
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        status.set(train_cpu_s=round(time.process_time() - cpu0, 3))  # CPU time (all threads): bench/bench_train.py
        state = trainer.state
        if trainer_ref["nan"]:
            bad = trainer_ref["nan"]
            msg = (f"the loss became NaN at step {bad['step']}: look at pairs {bad['pairs']} (a prompt that fills "
                   "max_length leaves an empty completion; the pre-flight drops or truncates those)")
            status.set(state="failed", message=msg, reason="nan loss", nan=bad)
            log(msg)
            return 1
        check.run(trainer.model, tok, state.global_step, "tuned")
        status.set(state="saving")
        adapter = run_dir / files.ADAPTER
        trainer.save_model(str(adapter))  # rank 0 only, as the Trainer decides
        if not MAIN:
            return 0
        tok.save_pretrained(str(adapter))
        files.write_json(adapter / "csat_training.json", {"run": spec["run_id"], "base": base,
                                                          "template": spec["template"], "set": cfg["set_name"]})
        last = (files.read_json(status.path) or {}).get("last") or {}
        final = {k: last.get(v) for k, v in KEYS.items() if last.get(v) is not None}
        final = {k.replace("/", "_"): v for k, v in final.items()}
        status.set(state="done", step=state.global_step, epoch=state.epoch, max_steps=state.max_steps,
                   adapter=str(adapter), final=final, train_runtime=callback.final.get("train_runtime"),
                   seconds_total=round(status.data["seconds_before"] + float(callback.final.get("train_runtime") or 0), 3))
        log(f"done: {state.global_step} steps, adapter in {adapter}")
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure must reach status.json
        traceback.print_exc()
        sys.stdout.flush()
        status.set(state="failed", message=reason_for(exc), reason=type(exc).__name__)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not (Path(argv[0]) / files.CONFIG).is_file():
        print("usage: python -m core.steps.train.worker RUN_DIR (a folder with config.json)", file=sys.stderr)
        return 2
    return run(Path(argv[0]).resolve())


if __name__ == "__main__":
    sys.exit(main())
