"""Batch files in the OpenAI Batch JSONL format (OpenAI's Batch API, `vllm run-batch`).

A set too large for live calls (KMMLU, years of mock exams) is written as one file of requests,
answered by an outside engine at its own pace and price, and read back. `write` puts every request
a step would send and the store lacks on one line (`custom_id` = the engine's cache key, `body` =
the exact JSON a live call sends) and remembers each request in `batch_requests`; `read` stores
each reply as the live call would have (generations row, extracted answer, tokens), so the step
then finds them in the cache and sends nothing for them. Reading the same file again stores
nothing new; a bad line is reported with its number and costs the others nothing.

Steps: solve, and mine (the gold-answer questions that mining asks the teacher and the student:
one file per model, as the OpenAI Batch API takes one model per file). The judge's and augment's
requests depend on earlier replies, so they are not written here (run them live).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import engine, generations, journal, pricing
from core.engine import Request
from core.errors import CoreError
from core.models import Model
from core.providers.base import GenParams, ProviderError, Result
from core.steps.solve import solve

if TYPE_CHECKING:
    from core.store import Store

STEPS = ("solve", "mine")
URL = "/v1/chat/completions"


def step_requests(store: Store, step: str, dataset: str, samples: int = 1,
                  limit: int | None = None) -> list[Request]:
    """The requests `step` sends one model on `dataset` (mine: questions with a gold answer only)."""
    if step not in STEPS:
        raise CoreError(f"batch files cover the steps {', '.join(STEPS)}, not {step!r}",
                        hint="the judge's and augment's requests depend on earlier replies: run them live")
    _, reqs = solve.solve_requests(store, dataset, samples, gold_only=step == "mine", limit=limit)
    return reqs


def _check_model(model: Model) -> None:
    if model.provider == "gemini":
        raise CoreError(f"{model.name!r} is a Gemini model: batch files are the OpenAI format",
                        hint="use the Gemini Batch API instead: add --param batch=true to the model")


def missing(store: Store, model: Model, requests: list[Request], params: dict[str, Any] | None = None,
            ) -> tuple[GenParams, list[str], dict[str, Request]]:
    """The run's params, every request's cache key (as the live step computes them) and the
    requests the store lacks, by key (identical requests: asked once)."""
    gen, keys = engine.request_keys(model, requests, params)
    journal.recover(store)  # replies a killed process paid for count as stored
    hit = generations.lookup(store, keys)
    todo: dict[str, Request] = {}
    for k, r in zip(keys, requests):
        if k not in hit:
            todo.setdefault(k, r)
    return gen, keys, todo


def write(store: Store, model: Model, requests: list[Request], out: str | Path,
          params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write every request the store lacks to `out` (one JSON line each); returns the counts."""
    from core.providers.openai_compat import wire_body

    _check_model(model)
    gen, keys, todo = missing(store, model, requests, params)
    if gen.prefill is not None:
        raise CoreError("prefill cannot be expressed in a chat-completions batch line",
                        hint="leave prefill unset for a model answered through a batch file")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with tmp.open("w", encoding="utf-8") as f:
        for k, r in todo.items():
            line = {"custom_id": k, "method": "POST", "url": URL,
                    "body": wire_body(model.model_id, r.messages, gen)}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    os.replace(tmp, out)  # a half-written file never carries the final name
    pj = engine.params_json(gen)
    rows = [(k, model.name, pj, r.task, r.dataset, r.qid, r.sample, r.prompt_hash,
             json.dumps(r.messages, ensure_ascii=False), r.n_choices, str(out)) for k, r in todo.items()]
    with store.transaction():
        store.executemany(
            "INSERT OR REPLACE INTO batch_requests (cache_key, model, params, task, dataset, qid, sample, "
            "prompt_hash, messages, n_choices, file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return {"requests": len(requests), "cached": len(requests) - sum(1 for k in keys if k in todo), "written": len(todo),
            "file": str(out)}


def parse_reply(obj: Any) -> Result:
    """One output line's reply as a Result; ProviderError (with the reason) when it holds none."""
    import openai.types.chat
    import pydantic

    from core.providers.openai_compat import OpenAICompatProvider

    if not isinstance(obj, dict):
        raise ProviderError("not a JSON object")
    err = obj.get("error")
    if err:
        msg = (err.get("message") or err.get("code")) if isinstance(err, dict) else err
        raise ProviderError(f"error: {str(msg)[:200]}")
    resp = obj.get("response")
    if not isinstance(resp, dict):
        raise ProviderError("no response")
    status = resp.get("status_code", 200)
    body = resp.get("body")
    if status != 200:
        detail = body.get("error", {}).get("message") if isinstance(body, dict) and isinstance(
            body.get("error"), dict) else body
        raise ProviderError(f"HTTP {status}: {str(detail)[:200]}")
    try:
        completion = openai.types.chat.ChatCompletion.model_validate(body)
    except pydantic.ValidationError as exc:
        raise ProviderError(f"not a chat completion ({exc.error_count()} problem(s), first: "
                            f"{exc.errors()[0]['msg']})") from None
    return OpenAICompatProvider.result(completion)


def read(store: Store, model: Model, path: str | Path) -> dict[str, Any]:
    """Store the replies in an output file (OpenAI batch output JSONL: custom_id, response
    {status_code, body}, error) written for `model`. Returns counts and one line per problem."""
    path = Path(path)
    if not path.is_file():
        raise CoreError(f"no file {path}", hint="pass the batch engine's output file")
    pending = {r["cache_key"]: r for r in store.rows(
        "SELECT cache_key, params, task, dataset, qid, sample, prompt_hash, messages, n_choices "
        "FROM batch_requests WHERE model = ?", [model.name])}
    stored = generations.lookup(store, list(pending))
    rows: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    already = lines = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            lines += 1
            try:
                obj = json.loads(raw)
            except ValueError:
                problems.append(f"line {n}: not JSON")
                continue
            cid = obj.get("custom_id") if isinstance(obj, dict) else None
            if cid not in pending:
                problems.append(f"line {n}: unknown custom_id {str(cid)[:70]!r} (not written by `batch write` "
                                f"for model {model.name!r})")
                continue
            try:
                res = parse_reply(obj)
            except ProviderError as exc:
                problems.append(f"line {n}: {exc.message}")
                continue
            if cid in stored or cid in rows:
                already += 1
                continue
            p = pending[cid]
            req = Request(json.loads(p["messages"]), p["prompt_hash"], p["sample"], p["task"], p["dataset"],
                          p["qid"], p["n_choices"])
            rows[cid] = engine.result_row(model, p["params"], cid, req, res, 1, None)
    generations.record(store, list(rows.values()))
    tokens_in = sum(r["input_tokens"] or 0 for r in rows.values())
    tokens_out = sum(r["output_tokens"] or 0 for r in rows.values())
    return {"lines": lines, "recorded": len(rows), "already_stored": already, "problems": problems,
            "answered": sum(r["answer"] is not None for r in rows.values()),
            "input_tokens": tokens_in, "output_tokens": tokens_out,
            "cost_usd": pricing.cost_usd(model, tokens_in, tokens_out, batch=True)}
