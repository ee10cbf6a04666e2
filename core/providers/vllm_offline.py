"""vLLM's offline engine in this process (`vllm.LLM`), for the student on this machine's GPUs.

Registered only when `vllm` is installed (found, not imported: core/providers/__init__.py), so
machines without it never see the choice. The engine hands over batches (`batched`); the K samples of a question are identical
conversations, sent as ONE conversation with `SamplingParams(n=K)` (vLLM shares the prompt's
prefill between them). `tensor_parallel_size` (a model param) spreads one model over N GPUs; for
data parallelism (vLLM's offline engine needs one process per rank) or a LoRA adapter, run
`vllm serve --data-parallel-size N --lora-modules …` and use the `openai` provider.

Written against vLLM's documented API (LLM(model, tensor_parallel_size, ...), LLM.chat(messages,
sampling_params, use_tqdm, chat_template_kwargs), RequestOutput.outputs[i].text /
.token_ids / .finish_reason, RequestOutput.prompt_token_ids); it has not been run against a real
vLLM here (no CUDA, vLLM not installable): tests/test_vllm_provider.py checks the calls it makes.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from core.answers import is_truncated
from core.errors import CoreError
from core.providers.base import GenParams, Provider, Result

if TYPE_CHECKING:
    from core.providers.base import Model

_ENGINES: dict[tuple[str, int], Any] = {}  # one engine per (model, GPUs) for the process: loading takes minutes
_LOCK = threading.Lock()


class VLLMProvider(Provider):
    name: ClassVar[str] = "vllm"
    batched: ClassVar[bool] = True
    unsupported: ClassVar[frozenset[str]] = frozenset({"thinking_budget", "prefill", "json_schema"})

    def __init__(self, model: Model):
        super().__init__(model)
        try:
            import vllm
        except ImportError:
            raise CoreError("vLLM is not installed", hint="pip install vllm on a CUDA machine, or serve the "
                            "model with `vllm serve` and use the openai provider") from None
        tp = model.params.tensor_parallel_size
        with _LOCK:
            key = (model.model_id, tp)
            if key not in _ENGINES:
                _ENGINES[key] = vllm.LLM(model=model.model_id, tensor_parallel_size=tp)
            self.llm = _ENGINES[key]
        self.sampling_params = vllm.SamplingParams
        self._lock = threading.Lock()  # one generate at a time per engine

    @classmethod
    def output_params(cls, model: Model) -> dict[str, Any]:
        return {"engine": "vllm-offline"}  # not the same outputs as a served copy: its own cache keys

    async def generate_batch(self, batch: list[list[dict[str, str]]], params: GenParams) -> list[Result]:
        return await asyncio.to_thread(self._generate, batch, params)

    def _generate(self, batch: list[list[dict[str, str]]], params: GenParams) -> list[Result]:
        groups: dict[str, list[int]] = {}  # identical conversations (a question's K samples) → indices
        for i, messages in enumerate(batch):
            groups.setdefault(repr(messages), []).append(i)
        by_n: dict[int, list[list[int]]] = {}  # one call per sample count (usually one: every question has K)
        for idxs in groups.values():
            by_n.setdefault(len(idxs), []).append(idxs)
        kwargs: dict[str, Any] = {"use_tqdm": False}
        if params.thinking is not None:
            kwargs["chat_template_kwargs"] = {"enable_thinking": params.thinking}
        results = [Result(error="vllm returned no output") for _ in batch]
        for n, group in by_n.items():
            sampling = self.sampling_params(n=n, **{k: v for k, v in (
                ("temperature", params.temperature), ("top_p", params.top_p),
                ("max_tokens", params.max_tokens)) if v is not None})
            with self._lock:
                outputs = self.llm.chat([batch[idxs[0]] for idxs in group], sampling_params=sampling, **kwargs)
            for idxs, out in zip(group, outputs):
                n_in = len(out.prompt_token_ids or [])
                for i, comp in zip(idxs, out.outputs):
                    results[i] = Result(text=comp.text, finish_reason=comp.finish_reason,
                                        truncated=is_truncated(comp.finish_reason), input_tokens=n_in,
                                        output_tokens=len(comp.token_ids))
        return results
