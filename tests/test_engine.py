"""The engine against a loopback OpenAI-compatible server: cache, retries, timeouts, errors, cancel/resume."""

from __future__ import annotations

import threading

import pytest
from loopback import Loopback, Reply

from core import engine, models
from core.engine import Request
from core.errors import CoreError
from core.providers.base import GenParams
from core.ratelimit import TokenBucket

FAST = {"retry_base_s": 0.01, "timeout_s": 5}


def reqs(n: int, prefix: str = "q", samples: int = 1) -> list[Request]:
    return [Request([{"role": "system", "content": "수능 문제를 푸세요."},
                     {"role": "user", "content": f"{prefix}{i}"}], "tmpl1", sample=k, dataset="d",
                    qid=f"{prefix}{i}", n_choices=5)
            for i in range(n) for k in range(samples)]


def model(store, srv, name="srv", **params):
    return models.add_model(store, name, "openai", "qwen3-14b", base_url=srv.base_url,
                            params={**FAST, **params}, replace=True)


def stored(store) -> tuple[int, int]:
    return store.scalar("SELECT count(*) FROM generations"), store.scalar(
        "SELECT count(DISTINCT cache_key) FROM generations")


def test_sends_once_then_serves_from_the_store(store):
    with Loopback("openai") as srv:
        m = model(store, srv, concurrency=8, thinking=False)
        first = engine.run(store, m, reqs(20))
        assert first.progress.sent == 20 and first.progress.cached == 0 and srv.count == 20
        assert all(r["answer"] == 1 and r["answer_method"] == "json" for r in first.rows)
        assert srv.requests[0]["body"]["chat_template_kwargs"] == {"enable_thinking": False}
        again = engine.run(store, m, reqs(20))
        assert again.progress.sent == 0 and again.progress.cached == 20 and srv.count == 20
        assert [r["cache_key"] for r in again.rows] == [r["cache_key"] for r in first.rows]
    assert stored(store) == (20, 20)


def test_identical_requests_in_one_run_are_sent_once(store):
    same_elsewhere = [Request(r.messages, r.prompt_hash, dataset="d2", qid=r.qid, n_choices=5) for r in reqs(3)]
    with Loopback("openai") as srv:
        run = engine.run(store, model(store, srv), reqs(3) + same_elsewhere)
        assert srv.count == 3 and all(r is not None for r in run.rows)
    assert store.scalar("SELECT count(*) FROM generations") == 3
    assert store.scalar("SELECT count(DISTINCT dataset) FROM generation_refs") == 2  # both know their reply


def test_cache_key_covers_output_not_throughput(store):
    m = models.add_model(store, "a", "openai", "x", base_url="http://127.0.0.1:9/v1")
    r = reqs(1)[0]
    key = engine.cache_key(m, {}, GenParams(temperature=0.5), r)
    faster = models.add_model(store, "b", "openai", "x", base_url="http://127.0.0.1:9/v1",
                              params={"concurrency": 64, "rpm": 10, "batch_size": 2, "timeout_s": 9})
    assert engine.cache_key(faster, {}, GenParams(temperature=0.5), r) == key
    assert engine.cache_key(m, {}, GenParams(temperature=0.7), r) != key
    assert engine.cache_key(m, {}, GenParams(temperature=0.5), reqs(1, samples=2)[1]) != key
    changed_template = Request(r.messages, "tmpl2", dataset="d", qid=r.qid, n_choices=5)
    assert engine.cache_key(m, {}, GenParams(temperature=0.5), changed_template) != key
    other_question_ref = Request(r.messages, r.prompt_hash, dataset="other", qid="zz", n_choices=5)
    assert engine.cache_key(m, {}, GenParams(temperature=0.5), other_question_ref) == key


def test_429_storm_is_retried_with_backoff(store):
    def script(n, body):
        return Reply(status=429, headers={"retry-after": "0"}) if n < 12 else Reply()

    with Loopback("openai", script) as srv:
        run = engine.run(store, model(store, srv, concurrency=4, max_retries=8), reqs(6))
        assert all(r["error"] is None for r in run.rows)
        assert srv.count == 12 + 6
        assert sum(r["attempts"] for r in run.rows) == 18


def test_500s_exhaust_retries_and_the_error_is_stored_then_retried_next_run(store):
    fail = threading.Event()
    fail.set()

    def script(n, body):
        return Reply(status=500) if fail.is_set() else Reply()

    with Loopback("openai", script) as srv:
        m = model(store, srv, concurrency=2, max_retries=2)
        run = engine.run(store, m, reqs(3))
        assert srv.count == 9 and run.progress.errors == 3
        assert all("HTTP 500" in r["error"] and r["attempts"] == 3 for r in run.rows)
        assert store.scalar("SELECT count(*) FROM generations WHERE error LIKE 'HTTP 500%'") == 3
        fail.clear()
        run = engine.run(store, m, reqs(3))
        assert run.progress.sent == 3 and run.progress.cached == 0 and run.progress.errors == 0
    assert stored(store) == (3, 3)
    assert store.scalar("SELECT count(*) FROM generations WHERE error IS NOT NULL") == 0


def test_slow_replies_time_out_and_are_stored_as_errors(store):
    with Loopback("openai", lambda n, b: Reply(delay=3)) as srv:
        m = model(store, srv, timeout_s=0.3, max_retries=1, concurrency=4)
        run = engine.run(store, m, reqs(2))
        assert all("timed out" in r["error"] for r in run.rows) and srv.count == 4


def test_malformed_bodies_are_errors_not_crashes(store):
    def script(n, body):
        return Reply(raw=b"<html>bad gateway</html>") if n % 2 == 0 else Reply(raw=b'{"choices": []}')

    with Loopback("openai", script) as srv:
        run = engine.run(store, model(store, srv, max_retries=0), reqs(4))
        assert all(r["error"] for r in run.rows), run.rows
        assert store.scalar("SELECT count(*) FROM generations WHERE error IS NOT NULL") == 4


def test_truncated_output_is_flagged(store):
    with Loopback("openai", lambda n, b: Reply(text="①과 ②를 비교하면", finish="length",
                                               reasoning="생각 중")) as srv:
        row = engine.run(store, model(store, srv), reqs(1)).rows[0]
    assert row["truncated"] is True and row["finish_reason"] == "length" and row["answer"] is None
    assert row["answer_reason"].startswith("truncated output")
    assert store.scalar("SELECT reasoning FROM generations") == "생각 중"


def test_a_bad_key_stops_the_run_instead_of_failing_every_request(store):
    with Loopback("openai", lambda n, b: Reply(status=401)) as srv:
        with pytest.raises(CoreError, match="HTTP 401"):
            engine.run(store, model(store, srv, concurrency=2), reqs(50))
        assert srv.count <= 4
    assert store.scalar("SELECT count(*) FROM generations WHERE error LIKE 'HTTP 401%'") == srv.count


def test_cancel_then_resume_sends_each_request_exactly_once(store):
    cancel = threading.Event()

    def progress(p):
        if p.sent >= 8:
            cancel.set()

    with Loopback("openai", lambda n, b: Reply(delay=0.05)) as srv:
        m = model(store, srv, concurrency=4)
        first = engine.run(store, m, reqs(40), cancel=cancel, progress=progress)
        assert first.cancelled and 8 <= first.progress.sent < 40
        assert srv.count == first.progress.sent  # requests in flight were finished and stored
        second = engine.run(store, m, reqs(40))
        assert not second.cancelled and second.progress.cached == first.progress.sent
        assert srv.count == 40
    assert stored(store) == (40, 40)


def test_errors_never_dropped_when_the_server_is_gone(store):
    m = models.add_model(store, "gone", "openai", "x", base_url="http://127.0.0.1:9/v1",
                         params={**FAST, "max_retries": 1})
    run = engine.run(store, m, reqs(2))
    assert all(r["error"] for r in run.rows)
    assert store.scalar("SELECT count(*) FROM generations WHERE error IS NOT NULL") == 2


def test_token_bucket_paces_and_allows_debt(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("core.ratelimit.time.monotonic", lambda: now[0])
    rpm = TokenBucket(60)  # one a second, burst of one
    assert rpm.try_take(1) == 0
    assert rpm.try_take(1) == pytest.approx(1.0)
    now[0] += 1.0
    assert rpm.try_take(1) == 0
    tpm = TokenBucket(600)  # 10 tokens a second: a 30-token request waits for a full bucket, then owes
    assert tpm.try_take(30) == 0 and tpm.level == -20
    assert tpm.try_take(5) == pytest.approx(2.5)


def test_rate_limit_is_applied_per_model(store, monkeypatch):
    """On a virtual clock that moves only when the limiter waits: no wall time is measured."""
    import asyncio
    from types import SimpleNamespace

    from core import ratelimit

    clock = [0.0]

    async def wait(seconds: float) -> None:
        clock[0] += seconds
        await asyncio.sleep(0)

    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(ratelimit, "asyncio", SimpleNamespace(sleep=wait))
    monkeypatch.setattr(ratelimit, "_SHARED", {})
    with Loopback("openai") as srv:
        limited = model(store, srv, name="limited", rpm=600, concurrency=16)  # 10 a second, burst 10
        free = model(store, srv, name="free", concurrency=16)
        assert engine.run(store, free, reqs(20)).progress.sent == 20
        assert clock[0] == 0  # a model without a limit never waits
        assert engine.run(store, limited, reqs(20, prefix="r")).progress.sent == 20
    # 10 at once, then 10 more at 10 a second: about one virtual second of waiting, not 20 at once.
    assert 0.9 <= clock[0] <= 1.5


def test_token_bucket_takes_a_level_short_by_rounding_only(monkeypatch):
    """0.6 + 2e-17 == 0.6 in floats: a wait that small never moves a clock, so it must not be asked."""
    now = [0.0]
    monkeypatch.setattr("core.ratelimit.time.monotonic", lambda: now[0])
    bucket = TokenBucket(600)
    bucket.level, bucket.stamp = 1 - 2e-16, 0.0
    assert bucket.try_take(1) == 0
