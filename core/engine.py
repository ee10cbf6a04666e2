"""The generation engine: cached, rate-limited, retried, concurrent calls to one registered model.

`run(store, model, requests)` serves every request it can from the store (one query for the whole
batch), sends the rest with bounded concurrency (or in batches, for in-process models), retries 429,
5xx and timeouts with exponential backoff and jitter, and stores every outcome, errors included,
through core.generations.record. A stored error is sent again on the next run and its row replaced,
so a stopped job resumes without paying twice. Cancel stops new sends; requests in flight finish
and are stored (they are paid for).

Crash safety: each reply goes to a journal file the moment it arrives (core/journal.py) and is
folded into DuckDB in batches; a run first folds any journal a killed process left behind, so
after a kill -9 only the requests in flight at the kill are sent again.

Nothing hangs: a server's Retry-After is honoured up to the model's `max_backoff_s`, and after
`breaker_failures` connection failures or timeouts in a row (a dead or hanging server), or after
`max_rate_limit_wait_s` of nothing but 429s (a spent quota), the run stops sending to that model
and fails with a message that says so (a circuit breaker); what was not sent is sent by the next run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core import generations, journal, models, providers
from core.answers import extract_answer
from core.errors import CoreError
from core.pricing import estimate_tokens
from core.providers.base import GenParams, Model, Provider, ProviderError, Request, Result
from core.ratelimit import POLL_S, Limits, limits_for
from core.secrets import redact

if TYPE_CHECKING:
    from core.store import Store

log = logging.getLogger(__name__)
FLUSH_ROWS = 64  # fold the journal into the store after this many results ...
FLUSH_S = 0.5  # ... or this long, whichever comes first


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    sent: int = 0
    cached: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class RunResult:
    rows: list[dict[str, Any] | None]  # per request: the stored outcome (RESULT_COLUMNS), None if not run
    progress: Progress = field(default_factory=Progress)
    cancelled: bool = False


def resolve_params(model: Model, params: GenParams | dict[str, Any] | None) -> GenParams:
    """The model's defaults overlaid with this run's settings (validated: typos fail here)."""
    base = model.params.gen_defaults()
    if params is None:
        return base
    if isinstance(params, dict):
        params = GenParams(**params)
    return base.model_copy(update=params.model_dump(exclude_unset=True))


def cache_key(model: Model, output_params: dict[str, Any], gen: GenParams, req: Request) -> str:
    """sha256 of what determines the output and nothing else (not concurrency, not batch size)."""
    payload = {"provider": model.provider, "model_id": model.model_id, "base_url": model.base_url,
               "adapter": model.adapter, "output_params": output_params, "params": gen.key_dict(),
               "messages": req.messages, "template": req.prompt_hash, "sample": req.sample}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def params_json(gen: GenParams) -> str:
    """The params column of a generations row (what the run's settings were)."""
    return json.dumps(gen.key_dict(), sort_keys=True, ensure_ascii=False)


def request_keys(model: Model, requests: list[Request],
                 params: GenParams | dict[str, Any] | None = None) -> tuple[GenParams, list[str]]:
    """The run's resolved params and each request's cache key, exactly as `run` computes them
    (batch files are keyed by these, so a reply read back is a cache hit for the live step)."""
    gen = resolve_params(model, params)
    cls = providers.provider_class(model.provider)
    cls.check(gen)
    out = cls.output_params(model)
    return gen, [cache_key(model, out, gen, r) for r in requests]


def result_row(model: Model, params_json: str, key: str, req: Request, res: Result, attempts: int,
               job_id: str | None) -> dict[str, Any]:
    """One generations row for a reply (the answer extracted when the request names its choices);
    the one shape every write path (live calls, batch files, batch APIs) stores."""
    answer = reason = method = None
    if req.n_choices and res.error is None:
        ext = extract_answer(res.text, req.n_choices)
        answer, reason, method = ext.answer, ext.reason, ext.method
        if res.truncated:  # kept (base models never stop by themselves) but flagged for review
            reason = f"truncated output; {reason}"
    return {"cache_key": key, "task": req.task, "dataset": req.dataset, "qid": req.qid,
            "model": model.name, "provider": model.provider, "model_id": model.model_id,
            "params": params_json, "prompt_hash": req.prompt_hash, "sample": req.sample,
            "messages": json.dumps(req.messages, ensure_ascii=False),
            "response": res.text if res.error is None else (res.text or None),
            "reasoning": res.reasoning, "answer": answer, "answer_reason": reason,
            "answer_method": method, "finish_reason": res.finish_reason, "truncated": res.truncated,
            "input_tokens": res.input_tokens, "output_tokens": res.output_tokens,
            "latency_s": res.latency_s, "attempts": attempts, "error": redact(res.error),
            "created_at": datetime.now(), "job_id": job_id}


def plan(store: Store, model: Model, requests: list[Request],
         params: GenParams | dict[str, Any] | None = None) -> dict[str, Any]:
    """How many requests are cached and how many would be sent (with their prompt tokens)."""
    gen = resolve_params(model, params)
    out = providers.provider_class(model.provider).output_params(model)
    keys = [cache_key(model, out, gen, r) for r in requests]
    journal.recover(store)  # replies a killed process paid for count as stored
    hit = generations.lookup(store, keys)
    todo = {k: r for k, r in zip(keys, requests) if k not in hit}
    tokens = sum(estimate_tokens("".join(m["content"] for m in r.messages)) for r in todo.values())
    return {"requests": len(requests), "cached": sum(k in hit for k in keys),
            "to_send": len(todo), "input_tokens": tokens, "max_tokens": gen.max_tokens}


class _Writer:
    """Journals each row as it arrives; writes rows to the store in batches from a worker thread,
    off the event loop, and drops each batch's journal segment once the store has it."""

    def __init__(self, store: Store):
        self.store = store
        self.rows: list[dict[str, Any]] = []
        self.refs: list[dict[str, Any]] = []
        self.wake = asyncio.Event()
        self.closing = False
        self.journal = journal.Journal(store)

    def add(self, row: dict[str, Any]) -> None:
        self.journal.append(row)  # on disk before anything else happens: a kill now loses nothing
        self.rows.append(row)
        if len(self.rows) >= FLUSH_ROWS:
            self.wake.set()

    async def _flush(self) -> None:
        # Same event-loop step as `add`: the rotated segment holds exactly these rows.
        rows, refs, self.rows, self.refs = self.rows, self.refs, [], []
        segment = self.journal.rotate()
        try:
            if rows or refs:
                await asyncio.to_thread(generations.record, self.store, rows, refs)
        except BaseException:
            self.journal.done(segment, folded=False)
            raise
        self.journal.done(segment)

    async def loop(self) -> None:
        while not self.closing:
            try:
                await asyncio.wait_for(self.wake.wait(), FLUSH_S)
            except TimeoutError:
                pass
            self.wake.clear()
            await self._flush()
        await self._flush()
        self.journal.close()


class _Run:
    def __init__(self, store: Store, model: Model, gen: GenParams,
                 job_id: str | None, cancel: threading.Event | None,
                 progress: Callable[[Progress], None] | None):
        self.store, self.model, self.gen = store, model, gen
        self.provider: Provider | None = None  # made only when something must be sent: cached runs need no key
        self.job_id, self.cancel, self.on_progress = job_id, cancel, progress
        self.params_json = params_json(gen)
        self.p = Progress()
        self.fatal: ProviderError | None = None
        self.unreachable = 0  # connection failures / timeouts in a row (the circuit breaker's count)
        self.limited_since: float | None = None  # first 429 since the last answer (the breaker's clock)
        self.writer = _Writer(store)
        self.reporter = ThreadPoolExecutor(1, thread_name_prefix="engine-progress")
        self.progress_lock = threading.Lock()
        self.latest: Progress | None = None
        self.reporting = False

    def stopped(self) -> bool:
        return self.fatal is not None or (self.cancel is not None and self.cancel.is_set())

    def report(self) -> None:
        """Hand a copy of the progress to the reporter thread: the callback writes the jobs row
        (a DuckDB write, waiting on the store's lock during a fold), which must never hold the event
        loop while replies wait unread (unjournaled) in their sockets. Only the latest copy is kept."""
        self.p.done = self.p.cached + self.p.sent
        if not self.on_progress:
            return
        with self.progress_lock:
            idle = self.latest is None and not self.reporting
            self.latest = dataclasses.replace(self.p)
            self.reporting = True
        if idle:
            self.reporter.submit(self._deliver)

    def _deliver(self) -> None:
        while True:
            with self.progress_lock:
                snap, self.latest = self.latest, None
                if snap is None:
                    self.reporting = False
                    return
            try:
                self.on_progress(snap)
            except Exception:  # a progress display must not fail the run
                log.exception("progress callback failed")

    def ref(self, key: str, req: Request) -> dict[str, Any] | None:
        if req.dataset is None or req.qid is None:
            return None
        return {"dataset": req.dataset, "qid": req.qid, "model": self.model.name, "task": req.task,
                "sample": req.sample, "cache_key": key, "job_id": self.job_id, "used_at": datetime.now()}

    def row(self, key: str, req: Request, res: Result, attempts: int) -> dict[str, Any]:
        return result_row(self.model, self.params_json, key, req, res, attempts, self.job_id)

    def finish(self, key: str, req: Request, res: Result, attempts: int, out: dict[str, dict]) -> None:
        row = self.row(key, req, res, attempts)
        self.writer.add(row)
        out[key] = {c: row[c] for c in generations.RESULT_COLUMNS}
        self.p.sent += 1
        self.p.errors += res.error is not None
        self.p.input_tokens += res.input_tokens or 0
        self.p.output_tokens += res.output_tokens or 0
        self.report()

    async def call(self, req: Request, limits: Limits) -> tuple[Result, int] | None:
        """One request with retries; None when cancelled before an answer came."""
        params = self.model.params
        est = estimate_tokens("".join(m["content"] for m in req.messages))
        attempt = 0
        while True:
            if not await limits.acquire(est + (self.gen.max_tokens or 0), self.stopped):
                return None
            start = time.monotonic()
            try:
                res = await asyncio.wait_for(self.provider.generate(req.messages, self.gen), params.timeout_s)
                if res.latency_s is None:
                    res.latency_s = round(time.monotonic() - start, 3)
                limits.settle(est + (self.gen.max_tokens or 0),
                              (res.input_tokens or est) + (res.output_tokens or 0))
                self.unreachable = 0
                self.limited_since = None
                return res, attempt + 1
            except TimeoutError:
                err = ProviderError(f"timed out after {params.timeout_s:g} s", retryable=True, connection=True)
            except ProviderError as exc:
                err = exc
            except Exception as exc:  # an SDK surprise: keep it on the row, do not crash the job
                err = ProviderError(f"{type(exc).__name__}: {exc}")
            if err.fatal:
                self.fatal = self.fatal or err
            self.trip(err)
            if not err.retryable or attempt >= params.max_retries or self.stopped():
                if self.stopped() and err.retryable:
                    return None  # cancelled or paused mid-retry: nothing to keep, the next run sends it
                return Result(error=str(err), latency_s=round(time.monotonic() - start, 3)), attempt + 1
            cap = params.max_backoff_s
            delay = min(cap, params.retry_base_s * 2 ** attempt) * random.uniform(0.5, 1.5)
            delay = min(cap, max(delay, err.retry_after or 0.0))  # Retry-After, but never past the cap
            if self.limited_since is not None:  # retry by the breaker's deadline, so it trips on time
                left = self.limited_since + params.max_rate_limit_wait_s - time.monotonic()
                delay = max(0.0, min(delay, left))
            if not await self.sleep(delay):
                return None
            attempt += 1

    def trip(self, err: ProviderError) -> None:
        """The circuit breaker: a server that is down or hangs fails every request the same way;
        after `breaker_failures` in a row, stop sending to it instead of working through the list.
        A server that answers only 429 is up but will not serve: after `max_rate_limit_wait_s` of
        nothing else, the model is paused too (waits are capped one by one; this caps their sum)."""
        if err.rate_limited:
            self.rate_limited(err)
            return
        self.limited_since = None  # the server answered something other than 429
        if not err.connection:
            self.unreachable = 0  # an answer came back (even an HTTP error): the server is up
            return
        self.unreachable += 1
        n = self.model.params.breaker_failures
        if self.unreachable >= n and self.fatal is None:
            where = self.model.base_url or f"the {self.model.provider} API"
            self.fatal = ProviderError(
                f"model {self.model.name!r} paused: {self.unreachable} connection failures or timeouts in a row "
                f"(last: {err.message}); {self.p.sent} finished, the rest were not sent",
                fatal=True, hint=f"check that {where} is up and answering, then run again: finished replies "
                "are stored and are not sent twice (breaker_failures sets how many failures pause a model)")

    def rate_limited(self, err: ProviderError) -> None:
        now, bound = time.monotonic(), self.model.params.max_rate_limit_wait_s
        if self.limited_since is None:
            self.limited_since = now
        waited = now - self.limited_since
        if waited >= bound and self.fatal is None:
            self.fatal = ProviderError(
                f"model {self.model.name!r} paused: rate limited (HTTP 429) on every request for {waited:.0f} s, "
                f"past max_rate_limit_wait_s = {bound:g} s (last: {err.message}); {self.p.sent} finished, "
                "the rest were not sent",
                fatal=True, hint="the provider's quota or rate limit is spent: run again later (finished replies "
                "are stored and are not sent twice), lower this model's concurrency or set its rpm / tpm, or raise "
                "max_rate_limit_wait_s")

    async def sleep(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.stopped():
                return False
            await asyncio.sleep(min(left, POLL_S))
        return True

    async def send_concurrent(self, todo: list[tuple[str, Request]], out: dict[str, dict]) -> None:
        limits = limits_for(self.model.name, self.model.params.rpm, self.model.params.tpm)
        queue = iter(todo)

        async def worker() -> None:
            for key, req in queue:  # workers share one iterator: each item is taken once
                if self.stopped():
                    return
                got = await self.call(req, limits)
                if got is not None:
                    self.finish(key, req, *got, out)

        await asyncio.gather(*(worker() for _ in range(min(self.model.params.concurrency, len(todo)))))

    async def send_batched(self, todo: list[tuple[str, Request]], out: dict[str, dict]) -> None:
        # Similar lengths together: less padding per batch.
        todo = sorted(todo, key=lambda kr: sum(len(m["content"]) for m in kr[1].messages))
        size = self.model.params.batch_size
        for i in range(0, len(todo), size):
            if self.stopped():
                return
            chunk = todo[i:i + size]
            try:
                results = await self.provider.generate_batch([r.messages for _, r in chunk], self.gen)
            except ProviderError as exc:
                if exc.fatal:
                    self.fatal = exc
                    return
                results = [Result(error=str(exc)) for _ in chunk]
            except Exception as exc:  # e.g. out of memory: the rows say so, the next run retries
                results = [Result(error=f"{type(exc).__name__}: {exc}") for _ in chunk]
            for (key, req), res in zip(chunk, results):
                self.finish(key, req, res, 1, out)

    async def send_batch_api(self, todo: list[tuple[str, Request]], out: dict[str, dict]) -> None:
        """The provider's Batch API (params batch=true): one batch, re-attached after a kill."""
        from core import batchapi

        await batchapi.send(self.store, self.model, self.provider, self.gen, todo,
                            lambda key, req, res: self.finish(key, req, res, 1, out), self.stopped,
                            self.on_progress, self.job_id)

    async def execute(self, requests: list[Request], keys: list[str], refresh: bool) -> RunResult:
        self.p.total = len(requests)
        await asyncio.to_thread(journal.recover, self.store)  # a killed run's replies are paid for
        hit = {} if refresh else generations.lookup(self.store, keys)
        self.writer.refs = [self.ref(k, r) for k, r in zip(keys, requests) if k in hit]
        self.p.cached = sum(k in hit for k in keys)
        self.report()
        todo = {k: r for k, r in zip(keys, requests) if k not in hit}  # identical requests: sent once
        out: dict[str, dict] = dict(hit)
        flusher = asyncio.create_task(self.writer.loop())
        try:
            if todo and not self.stopped():
                self.provider = providers.make(self.model)
                send = self.send_batched if self.provider.batched else self.send_concurrent
                if self.model.params.batch and self.provider.batch_api:
                    send = self.send_batch_api
                await send(list(todo.items()), out)
            # The stored row names one question; the others that asked the same thing get refs.
            self.writer.refs += [self.ref(k, r) for k, r in zip(keys, requests)
                                 if k in todo and k in out and todo[k] is not r]
        finally:
            self.writer.closing = True
            self.writer.wake.set()
            await flusher
            if self.provider is not None:
                await self.provider.aclose()
            await asyncio.to_thread(self.reporter.shutdown)  # the last progress is delivered before we return
        rows = [out.get(k) for k in keys]
        if self.fatal is not None:
            raise CoreError(self.fatal.message, hint=self.fatal.hint)
        return RunResult(rows, self.p, cancelled=any(r is None for r in rows))


async def run_async(store: Store, model: Model, requests: list[Request], *,
                    params: GenParams | dict[str, Any] | None = None, job_id: str | None = None,
                    cancel: threading.Event | None = None,
                    progress: Callable[[Progress], None] | None = None, refresh: bool = False) -> RunResult:
    """See `run`."""
    gen = resolve_params(model, params)
    cls = providers.provider_class(model.provider)
    cls.check(gen)
    out_params = cls.output_params(model)
    keys = [cache_key(model, out_params, gen, r) for r in requests]
    return await _Run(store, model, gen, job_id, cancel, progress).execute(requests, keys, refresh)


def run(store: Store, model: Model, requests: list[Request], *,
        params: GenParams | dict[str, Any] | None = None, job_id: str | None = None,
        cancel: threading.Event | None = None, progress: Callable[[Progress], None] | None = None,
        refresh: bool = False) -> RunResult:
    """Generate (or fetch from the store) one reply per request; blocking.

    params: this run's overrides of the model's defaults. cancel: set it to stop sending (the run
    returns with `cancelled` True after the requests in flight are stored). progress: called with a
    Progress after every result. refresh: ignore the cache (still stores). Raises CoreError when the
    model cannot be used at all (missing key, bad model id); other failures are stored on rows.
    """
    coro = run_async(store, model, requests, params=params, job_id=job_id, cancel=cancel,
                     progress=progress, refresh=refresh)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop (a notebook): run ours in a thread of its own.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


TEST_TIMEOUT_S = 15.0  # `models test`: one attempt, at most this long
TEST_MESSAGES = [{"role": "user", "content": "1 더하기 1은 얼마입니까? 숫자 하나로만 답하세요."}]


TEST_MAX_TOKENS = 256


def test_model(store: Store, name: str) -> dict[str, Any]:
    """One real call, bypassing the cache (it is a connectivity check) but stored like any other.

    Returns {"ok", "text", "error", "finish_reason", "latency_s"}; `error` is in plain words.
    """
    model = models.get_model(store, name)
    # A connectivity check answers fast: one attempt, a short timeout (a down or hanging server
    # says so in seconds, not after the model's full retry policy).
    quick = model.params.model_copy(update={"max_retries": 0,
                                            "timeout_s": min(model.params.timeout_s, TEST_TIMEOUT_S)})
    model = dataclasses.replace(model, params=quick)
    req = Request(TEST_MESSAGES, prompt_hash="models.test", task="test")
    try:
        # The model's own max_tokens (a test must not make a slow local model write 512 tokens); a short
        # cap only when it has none.
        limit = {} if model.params.max_tokens else {"max_tokens": TEST_MAX_TOKENS}
        out = run(store, model, [req], params=limit, refresh=True)
    except CoreError as exc:
        return {"ok": False, "text": None, "error": str(exc), "finish_reason": None, "latency_s": None}
    row = out.rows[0] or {}
    error = row.get("error")
    return {"ok": error is None, "text": row.get("response"), "error": error,
            "finish_reason": row.get("finish_reason"), "latency_s": row.get("latency_s")}


test_model.__test__ = False  # a product function, not a pytest test, even when imported into one
