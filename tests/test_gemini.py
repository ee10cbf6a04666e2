"""The Gemini provider against a loopback server speaking the generateContent wire format."""

from __future__ import annotations

import pytest
from loopback import Loopback, Reply

from core import engine, models
from core.engine import Request
from core.errors import CoreError

KEY = "test-key-not-a-secret"
SCHEMA = {"type": "object", "properties": {"Answer": {"type": "string"}}, "required": ["Answer"]}


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)


def gemini(store, srv, **params):
    return models.add_model(store, "flash", "gemini", "gemini-2.5-flash", base_url=srv.base_url,
                            params={"retry_base_s": 0.01, "timeout_s": 5, **params}, replace=True)


def one(text="문제", n_choices=5):
    return [Request([{"role": "system", "content": "시스템"}, {"role": "user", "content": text}], "t1",
                    dataset="d", qid="1", n_choices=n_choices)]


def test_wire_format_and_stored_row(store):
    with Loopback("gemini", lambda n, b: Reply(reasoning="먼저 ①을 본다")) as srv:
        m = gemini(store, srv, temperature=0.2, max_tokens=300, thinking=True, thinking_budget=128)
        row = engine.run(store, m, one(), params={"json_schema": SCHEMA}).rows[0]
        sent = srv.requests[0]
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent["headers"].get("x-goog-api-key") == KEY
    body = sent["body"]
    assert body["systemInstruction"]["parts"][0]["text"] == "시스템"
    assert body["contents"] == [{"role": "user", "parts": [{"text": "문제"}]}]
    cfg = body["generationConfig"]
    assert cfg["temperature"] == 0.2 and cfg["maxOutputTokens"] == 300
    assert cfg["responseMimeType"] == "application/json" and cfg["responseJsonSchema"] == SCHEMA
    thinking = cfg["thinkingConfig"]
    assert (thinking.get("thinkingBudget") or thinking.get("thinking_budget")) == 128
    assert row["answer"] == 1 and row["finish_reason"] == "STOP" and row["truncated"] is False
    assert row["input_tokens"] == 11 and row["output_tokens"] == 7
    stored = store.rows("SELECT reasoning, params, messages FROM generations")[0]
    assert stored["reasoning"] == "먼저 ①을 본다" and '"json_schema"' in stored["params"]
    assert KEY not in str(store.rows("SELECT * FROM generations"))


def test_max_tokens_is_truncated_and_safety_is_recorded(store):
    replies = {0: Reply(text="③과 ④를", finish="MAX_TOKENS"), 1: Reply(text="", finish="SAFETY"),
               2: Reply(blocked="PROHIBITED_CONTENT")}
    with Loopback("gemini", lambda n, b: replies[n]) as srv:
        m = gemini(store, srv, concurrency=1)
        rows = [engine.run(store, m, one(f"q{i}")).rows[0] for i in range(3)]
    assert rows[0]["truncated"] is True and rows[0]["finish_reason"] == "MAX_TOKENS"
    assert rows[1]["finish_reason"] == "SAFETY" and rows[1]["answer"] is None and rows[1]["error"] is None
    assert rows[2]["finish_reason"] == "PROMPT_BLOCKED:PROHIBITED_CONTENT"


def test_sdk_does_not_retry_behind_the_engine(store):
    with Loopback("gemini", lambda n, b: Reply(status=503)) as srv:
        row = engine.run(store, gemini(store, srv, max_retries=2), one()).rows[0]
    assert srv.count == 3 and row["attempts"] == 3 and "HTTP 503" in row["error"]


def test_429_then_success(store):
    with Loopback("gemini", lambda n, b: Reply(status=429) if n < 2 else Reply()) as srv:
        row = engine.run(store, gemini(store, srv), one()).rows[0]
    assert row["error"] is None and row["attempts"] == 3 and srv.count == 3


def test_missing_key_fails_before_any_request(store, monkeypatch):
    with Loopback("gemini") as srv:
        m = gemini(store, srv)
        monkeypatch.delenv("GEMINI_API_KEY")
        with pytest.raises(CoreError, match="GEMINI_API_KEY"):
            engine.run(store, m, one())
        assert srv.count == 0


def test_cached_replies_need_no_key(store, monkeypatch):
    with Loopback("gemini") as srv:
        m = gemini(store, srv)
        engine.run(store, m, one())
        monkeypatch.delenv("GEMINI_API_KEY")
        assert engine.run(store, m, one()).progress.cached == 1


def test_model_test_reports_plain_words(store):
    with Loopback("gemini", lambda n, b: Reply(text="2") if n == 0 else Reply(status=400)) as srv:
        gemini(store, srv)
        ok = engine.test_model(store, "flash")
        assert ok["ok"] and ok["text"] == "2"
        bad = engine.test_model(store, "flash")
        assert not bad["ok"] and "HTTP 400" in bad["error"]


def test_the_key_never_reaches_the_store_even_on_errors(store):
    statuses = iter([500, 200, 400, 200])
    with Loopback("gemini", lambda n, b: Reply(status=next(statuses, 200))) as srv:
        m = gemini(store, srv, max_retries=0, concurrency=1)
        reqs = [Request([{"role": "user", "content": f"문제 {i}"}], "t1", dataset="d", qid=str(i), n_choices=5)
                for i in range(4)]
        rows = engine.run(store, m, reqs).rows
    assert sum(r["error"] is not None for r in rows) == 2  # errors are stored on their rows
    assert all(KEY not in (r["error"] or "") for r in rows)
    store.con.execute("CHECKPOINT")
    with open(store.path, "rb") as f:
        assert KEY.encode() not in f.read()
