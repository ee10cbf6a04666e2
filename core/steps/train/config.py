"""TrainConfig: every setting of an ORPO run, with the original project's orpo-train defaults.

Field names follow TRL's ORPOConfig / transformers' TrainingArguments where one exists and PEFT's
LoraConfig for LoRA (prefixed `lora_`), so a setting reads the same here, on the CLI
(`--param max_steps=2`) and in TRL's documentation. The config (and its hash) is the run's identity:
starting the same config again resumes or shows that run.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from core.runs import StepConfig

DEFAULT_TARGETS = ["gate_proj", "up_proj", "down_proj"]
BETA_HELP = ("ORPO λ: weight of the odds-ratio term against the NLL loss. References: the ORPO authors used 0.1 "
             "(0.05 on small sets) and advise 0.5–1.0 for small models; the original project's config has 0.8 "
             "while its README says 0.15 — `train sweep` measures it on held-out pairs")
LENGTHS = ("max_length", "max_prompt_length", "max_completion_length")


class TrainConfig(StepConfig):
    step: ClassVar[str] = "train"
    not_identity: ClassVar[frozenset[str]] = frozenset(
        {"logging_steps", "save_steps", "save_total_limit", "eval_steps", "heldout_gen_tokens"})

    set_name: str = Field(..., min_length=1, description="frozen preference set to train on")
    base_model: str = Field(..., min_length=1,
                            description="registered local-provider model (e.g. gemma3-270m-local) or a transformers folder")
    beta: float = Field(0.8, gt=0, le=10, description=BETA_HELP)
    learning_rate: float = Field(5e-6, gt=0, le=1, description="peak learning rate")
    per_device_train_batch_size: int = Field(1, ge=1, le=64, description="pairs per forward pass and device")
    gradient_accumulation_steps: int = Field(6, ge=1, le=1024, description="micro-batches per optimizer step")
    num_train_epochs: float = Field(2.0, gt=0, le=100, description="passes over the set (ignored when max_steps > 0)")
    max_steps: int = Field(-1, ge=-1, description="optimizer steps to run; -1: num_train_epochs decides")
    max_length: int = Field(8192, ge=16, le=131072, description="prompt + completion tokens per sequence")
    max_prompt_length: int = Field(4096, ge=8, le=131072, description="prompt tokens; longer prompts are dropped or cut (long_prompts)")
    max_completion_length: int = Field(4096, ge=8, le=131072, description="chosen/rejected tokens; longer ones are cut at the end")
    long_prompts: Literal["drop", "truncate"] = Field(
        "drop", description="a prompt over max_prompt_length: drop the pair, or keep the prompt's last tokens")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of steps with a linear warm-up")
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="learning-rate schedule after warm-up")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping")
    optim: Literal["adamw_8bit", "paged_adamw_8bit", "adamw_torch", "adafactor"] = Field(
        "adamw_8bit", description="optimizer on CUDA (CPU always uses adamw_torch)")
    seed: int = Field(3407, ge=0, description="seed for LoRA init, data order and the held-out split")
    heldout_fraction: float = Field(0.1, ge=0, lt=1, description=(
        "share of the set's pairs held out of training and scored before and after it (≥ 1 pair when the set has "
        "5 or more; 0 turns the check off)"))
    eval_steps: int = Field(0, ge=0, description="also score the held-out pairs every N steps (0: before and after only)")
    heldout_gen_tokens: int = Field(32, ge=0, le=4096, description=(
        "greedy tokens generated per held-out prompt (base and tuned) to watch completion length drift; 0: off"))
    logging_steps: int = Field(1, ge=1, description="log (and plot) every N optimizer steps")
    save_steps: int = Field(50, ge=1, description="checkpoint every N steps (resume starts from the last)")
    save_total_limit: int = Field(2, ge=1, le=100, description="checkpoints kept")
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank")
    lora_alpha: int = Field(16, ge=1, le=4096, description="LoRA alpha (scale = alpha / r)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGETS),
                                      description="module names that get LoRA adapters")
    load_in_4bit: bool = Field(True, description="bitsandbytes 4-bit base weights (CUDA only; CPU trains in float32)")
    gradient_checkpointing: bool = Field(True, description="recompute activations: far less memory, ~30% slower")
    thinking: Literal["model", "on", "off"] = Field(
        "model", description="Qwen3 thinking in the chat template: the base model's own setting, or on/off")
    num_processes: int = Field(1, ge=1, le=64, description=(
        "data-parallel worker processes, one per GPU (accelerate launch; TRL + PEFT, Unsloth stays single-GPU); "
        "on a CPU they share its cores (a trial of the multi-GPU path)"))
    backend: Literal["auto", "unsloth", "trl", "cpu"] = Field(
        "auto", description="auto: Unsloth if CUDA + unsloth, else TRL + PEFT on CUDA, else CPU")

    @model_validator(mode="after")
    def _lengths(self) -> TrainConfig:
        if not self.target_modules or any(not m.strip() for m in self.target_modules):
            raise ValueError("target_modules needs at least one module name")
        given = self.model_fields_set
        if self.max_prompt_length >= self.max_length:
            # A length the user did not set follows the one they did, instead of failing on a default.
            if "max_prompt_length" not in given:
                self.max_prompt_length = max(8, self.max_length - min(self.max_completion_length, self.max_length // 2))
            elif "max_length" not in given:
                self.max_length = self.max_prompt_length + self.max_completion_length
            else:
                raise ValueError(f"max_prompt_length ({self.max_prompt_length}) must be below max_length "
                                 f"({self.max_length})")
        if "max_completion_length" not in given:
            self.max_completion_length = min(self.max_completion_length, self.max_length - self.max_prompt_length)
        return self

    @classmethod
    def resolve(cls, values: dict[str, Any], given: set[str]) -> dict[str, Any]:
        """Values from a preset or a form's defaults, with `given` the fields the user set: when the user
        set a length, the lengths they did not set are dropped so they follow (see _lengths)."""
        if given & set(LENGTHS):
            return {k: v for k, v in values.items() if k not in LENGTHS or k in given}
        return values


# Presets fill the form (and `--preset` on the CLI); set name and base model stay the user's.
PRESETS: dict[str, dict[str, Any]] = {
    "original (orpo-train)": {},
    # Fits the product's own frozen pairs: the solve prompt renders to ~490 tokens (Gemma); longer ones are
    # cut to their end rather than dropped.
    "tiny CPU trial": {
        "max_steps": 2, "gradient_accumulation_steps": 1, "max_length": 768, "max_prompt_length": 512,
        "max_completion_length": 256, "long_prompts": "truncate", "learning_rate": 1e-4, "warmup_ratio": 0.0,
        "save_steps": 1, "heldout_gen_tokens": 8,  # generation is the slow part of the check on a CPU
        "load_in_4bit": False, "optim": "adamw_torch", "gradient_checkpointing": False, "backend": "cpu",
    },
    # Qwen3-14B 4-bit on 16 GB (compute 7.0: fp16): ~14.6 GB estimated with Unsloth at 3072 tokens.
    "V100 16 GB": {
        "max_length": 3072, "max_prompt_length": 2048, "max_completion_length": 1024, "load_in_4bit": True,
        "gradient_checkpointing": True, "optim": "paged_adamw_8bit", "save_steps": 25,
    },
}


def preset(name: str) -> dict[str, Any]:
    from core.errors import CoreError

    if name not in PRESETS:
        raise CoreError(f"no preset {name!r}", hint="presets: " + ", ".join(PRESETS))
    return dict(PRESETS[name])
