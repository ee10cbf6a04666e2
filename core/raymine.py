"""A step's requests answered over a Ray cluster with Ray Data's LLM processors (optional extra:
requirements-ray.txt); the replies are stored as a live call would store them.

The requests are exactly those `batch write` writes (core/batchfile.py: every request the step
would send and the store lacks, keyed by the engine's cache key, with the exact body a live call
sends). They go through `ray.data.llm.build_processor`:

- a model of provider `openai` (any OpenAI-compatible server: vLLM, SGLang, OpenAI): an
  `HttpRequestProcessorConfig` pointed at the model's `<base_url>/chat/completions`; `concurrency`
  HTTP workers run on the cluster, so many servers behind one URL (a load balancer, Ray Serve) are
  kept busy from many machines.
- a model of provider `vllm`: a `vLLMEngineProcessorConfig` (vLLM replicas on the cluster's GPUs,
  `concurrency` of them, `tensor_parallel_size` GPUs each). NOT RUN HERE (no CUDA): written
  against Ray's documented API.

Only this driver touches the store: the workers receive plain JSON and send back plain JSON, so
they need ray (and aiohttp / vllm), not this project. Replies are stored as they stream back, in
chunks, through `engine.result_row` and `generations.record` (the path `batch read` uses), so the
step then finds them in the cache and sends nothing for them; a reply holding an error is reported
and not stored (the live step sends it again), as `batch read` does; a run stopped half-way (a dead
server, Ctrl-C) keeps every reply already stored and the next run sends only the rest.

Nothing in core imports this module at module level: ray loads only when it runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core import batchfile, engine, generations
from core.errors import CoreError
from core.models import Model
from core.providers.base import GenParams, ProviderError, Result

if TYPE_CHECKING:
    from core.store import Store

FLUSH_ROWS = 64  # replies stored per write while the stream runs
OPENAI_URL = "https://api.openai.com/v1"


def _ray() -> Any:
    try:
        import ray
        import ray.data.llm  # noqa: F401  (HTTP processor: needs aiohttp too)
    except ImportError as exc:
        raise CoreError(f"Ray Data LLM is not installed ({exc.name or exc})",
                        hint="pip install -r requirements-ray.txt (on the driver and every node)") from None
    return ray


def connect(address: str | None) -> None:
    """Join the cluster at `address` ("auto", "ray://head:10001", an ip:port) or, when None and no
    Ray is running in this process, start a local one; an already-initialised Ray is used as is."""
    ray = _ray()
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False if address is None else None)
    except Exception as exc:  # ConnectionError, a version mismatch …: one line, not a traceback
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise CoreError(f"cannot start or join {where}: {type(exc).__name__}: {str(exc).strip()[:300]}",
                        hint="start the cluster (`ray start --head` on the head node) and pass --address auto "
                             "there, or leave --address out for a local Ray") from None


def _http_processor(model: Model, gen: GenParams, concurrency: int, batch_size: int) -> Any:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    from core import config
    from core.providers.openai_compat import DEFAULT_KEY_ENV

    if model.params.api_key_env:  # named explicitly: it must be set (as the live provider insists)
        key = model.api_key()
        if not key:
            raise CoreError(f"no API key for model {model.name!r}",
                            hint=f"set {model.key_env}, or remove api_key_env if the server needs none")
    else:
        key = config.secret(DEFAULT_KEY_ENV)
    url = (model.base_url or OPENAI_URL).rstrip("/") + "/chat/completions"
    cfg = HttpRequestProcessorConfig(
        url=url, headers={"Authorization": f"Bearer {key or 'not-needed'}"},
        concurrency=concurrency, batch_size=batch_size,
        # Ray retries 429/408/502/503/504 and connection errors; other statuses come back as bodies.
        max_retries=model.params.max_retries, base_retry_wait_time_in_s=model.params.retry_base_s,
        # Each worker sends its batch one request after another, at most qps a second (an int, per worker).
        qps=max(1, int(model.params.rpm / 60 / concurrency)) if model.params.rpm else None)

    # Closures (pickled by value): the workers need json, not this project.
    def pre(row: dict[str, Any]) -> dict[str, Any]:
        import json
        return {"payload": json.loads(row["body"])}

    def post(row: dict[str, Any]) -> dict[str, Any]:
        import json
        return {"custom_id": row["custom_id"], "reply": json.dumps(row["http_response"], ensure_ascii=False)}

    return build_processor(cfg, preprocess=pre, postprocess=post)


def _vllm_processor(model: Model, gen: GenParams, concurrency: int, batch_size: int) -> Any:
    """vLLM replicas on the cluster (not run here: needs CUDA). Each row is one chat with n=1."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    cfg = vLLMEngineProcessorConfig(
        model_source=model.model_id, concurrency=concurrency, batch_size=batch_size,
        engine_kwargs={"tensor_parallel_size": model.params.tensor_parallel_size},
        should_continue_on_error=True)  # a failed row carries __inference_error__, the others go on
    sampling = {k: v for k, v in (("temperature", gen.temperature), ("top_p", gen.top_p),
                                  ("max_tokens", gen.max_tokens)) if v is not None}
    max_tokens = gen.max_tokens

    def pre(row: dict[str, Any]) -> dict[str, Any]:
        import json
        return {"messages": json.loads(row["messages"]), "sampling_params": dict(sampling)}

    def post(row: dict[str, Any]) -> dict[str, Any]:
        import json
        n_out = int(row.get("num_generated_tokens") or 0)
        # Ray's vLLM output has no finish reason: a reply that used every token allowed was cut.
        finish = "length" if max_tokens and n_out >= max_tokens else "stop"
        body = {"id": row["custom_id"], "object": "chat.completion", "created": 0, "model": "",
                "choices": [{"index": 0, "finish_reason": finish,
                             "message": {"role": "assistant", "content": row["generated_text"]}}],
                "usage": {"prompt_tokens": int(row.get("num_input_tokens") or 0), "completion_tokens": n_out,
                          "total_tokens": int(row.get("num_input_tokens") or 0) + n_out}}
        return {"custom_id": row["custom_id"], "reply": json.dumps(body, ensure_ascii=False)}

    kwargs = {} if gen.thinking is None else {"chat_template_kwargs": {"enable_thinking": gen.thinking}}
    return build_processor(cfg, preprocess=pre, postprocess=post, builder_kwargs=kwargs or None)


def _result(row: dict[str, Any]) -> Result:
    """A processor's output row as a Result; ProviderError with the reason when it holds no reply."""
    if row.get("__inference_error__"):
        raise ProviderError(f"error: {str(row['__inference_error__'])[:200]}")
    try:
        body = json.loads(row["reply"])
    except (KeyError, TypeError, ValueError):
        raise ProviderError("no reply") from None
    # An HTTP error status comes back as the server's error body. Ray Data unifies a block's rows to
    # one schema, so a reply's "error" may be present and null: only a set one is an error.
    if isinstance(body, dict) and body.get("error"):
        return batchfile.parse_reply({"error": body["error"]})
    return batchfile.parse_reply({"response": {"status_code": 200, "body": body}})


def run(store: Store, model: Model, requests: list[engine.Request], params: dict[str, Any] | None = None, *,
        concurrency: int = 1, batch_size: int = 16,
        progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Send every request the store lacks through Ray Data and store the replies; returns counts and
    one line per reply not stored. Ray must be initialised (`connect`)."""
    ray = _ray()
    if model.provider not in ("openai", "vllm"):
        raise CoreError(f"{model.name!r} is a {model.provider} model: Ray runs OpenAI-compatible servers "
                        "(provider openai) or vLLM replicas (provider vllm)",
                        hint="register the model with provider openai and the server's base URL")
    gen, keys, todo = batchfile.missing(store, model, requests, params)
    summary: dict[str, Any] = {"model": model.name, "requests": len(requests), "cached": len(requests) - sum(
        k in todo for k in keys), "sent": len(todo), "recorded": 0, "answered": 0, "problems": [],
        "input_tokens": 0, "output_tokens": 0}
    if not todo:
        return summary
    if gen.prefill is not None:
        raise CoreError("prefill cannot be sent through Ray's chat processors",
                        hint="leave prefill unset for a model answered over Ray")
    from core.providers.openai_compat import wire_body

    if model.provider == "openai":
        items = [{"custom_id": k, "body": json.dumps(wire_body(model.model_id, r.messages, gen), ensure_ascii=False)}
                 for k, r in todo.items()]
        proc = _http_processor(model, gen, concurrency, batch_size)
    else:
        items = [{"custom_id": k, "messages": json.dumps(r.messages, ensure_ascii=False)} for k, r in todo.items()]
        proc = _vllm_processor(model, gen, concurrency, batch_size)
    pj = engine.params_json(gen)
    pending: list[dict[str, Any]] = []
    seen: set[str] = set()

    def flush() -> None:
        generations.record(store, pending)
        summary["recorded"] += len(pending)
        summary["answered"] += sum(r["answer"] is not None for r in pending)
        summary["input_tokens"] += sum(r["input_tokens"] or 0 for r in pending)
        summary["output_tokens"] += sum(r["output_tokens"] or 0 for r in pending)
        pending.clear()

    try:
        for row in proc(ray.data.from_items(items)).iter_rows():
            key = row.get("custom_id")
            if key not in todo or key in seen:
                continue
            seen.add(key)
            try:
                pending.append(engine.result_row(model, pj, key, todo[key], _result(row), 1, None))
            except ProviderError as exc:
                summary["problems"].append(f"{key[:12]}… ({todo[key].qid} #{todo[key].sample}): {exc.message}")
            if len(pending) >= FLUSH_ROWS:
                flush()
            if progress:
                progress(len(seen), len(todo))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a worker gave up (server down, retries spent): keep what came back
        flush()
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CoreError(f"the Ray run for {model.name!r} stopped after {len(seen)} of {len(todo)} replies "
                        f"({summary['recorded']} stored): {type(exc).__name__}: {first[:300]}",
                        hint=f"check that {model.base_url or 'the server'} answers; run again: only the "
                             "requests still missing are sent") from None
    finally:
        if pending:
            flush()
    return summary
