"""The in-process transformers provider: a tiny random Qwen3 built offline, and the real gemma3-270m GGUF."""

from __future__ import annotations

import pytest
from minidata import import_mini

from core import engine, generations, models
from core.engine import Request
from core.errors import CoreError
from core.migrations.m002_models_generations_jobs import GEMMA_LOCAL
from core.providers import local
from core.providers.base import GenParams
from core.steps.solve import solve


def prompts(n):
    # Different lengths, so batches need padding.
    return [Request([{"role": "user", "content": "다음 수능 문제를 풀어 주세요. " * (i + 1)}], "t", qid=str(i),
                    dataset="d", n_choices=5) for i in range(n)]


def test_batches_with_left_padding_and_stores_rows(store, tiny_qwen, monkeypatch):
    m = models.add_model(store, "tiny", "local", tiny_qwen, params={"batch_size": 2, "max_tokens": 6,
                                                                     "temperature": 0})
    sizes = []
    original = local.LocalProvider._generate
    monkeypatch.setattr(local.LocalProvider, "_generate",
                        lambda self, batch, params: sizes.append(len(batch)) or original(self, batch, params))
    run = engine.run(store, m, prompts(5))
    assert sorted(sizes) == [1, 2, 2]
    assert all(r["error"] is None and 1 <= r["output_tokens"] <= 6 for r in run.rows)
    assert len({r["latency_s"] for r in run.rows}) <= 3
    assert store.scalar("SELECT count(*) FROM generations") == 5
    tokens = [r["input_tokens"] for r in store.rows("SELECT input_tokens FROM generations ORDER BY qid")]
    assert tokens == sorted(tokens) and len(set(tokens)) == 5  # real lengths, not padded ones
    assert engine.run(store, m, prompts(5)).progress.cached == 5


def test_left_padding_does_not_change_greedy_output(store, tiny_qwen):
    alone = models.add_model(store, "alone", "local", tiny_qwen, params={"batch_size": 1, "max_tokens": 5,
                                                                         "temperature": 0})
    batched = models.add_model(store, "batched", "local", tiny_qwen, params={"batch_size": 4, "max_tokens": 5,
                                                                             "temperature": 0})
    a = engine.run(store, alone, prompts(4), refresh=True).rows
    b = engine.run(store, batched, prompts(4), refresh=True).rows
    assert [r["response"] for r in a] == [r["response"] for r in b]


def test_chat_template_gets_enable_thinking(tiny_qwen):
    _, tok, _ = local.load(tiny_qwen)
    provider = local.LocalProvider(models.Model("t", "local", tiny_qwen))
    msgs = [{"role": "user", "content": "hi"}]
    off, chat = provider.prompt(tok, msgs, GenParams(thinking=False))
    on, _ = provider.prompt(tok, msgs, GenParams(thinking=True))
    assert chat and off.endswith("<think>\n\n</think>\n\n") and not on.endswith("</think>\n\n")


def test_thinking_is_split_from_the_reply():
    assert local._split_thinking('<think>\n①은 틀림\n</think>\n\n{"Answer":"2"}') == ('{"Answer":"2"}', "①은 틀림")
    assert local._split_thinking("no thinking") == ("no thinking", None)


def test_solve_with_a_local_model(store, tiny_qwen, tmp_path):
    import_mini(store, tmp_path, n=3)
    models.add_model(store, "tiny", "local", tiny_qwen, params={"max_tokens": 4, "batch_size": 4})
    summary = solve.solve(store, "mini", "tiny", samples=2, temperature=0.8)
    assert summary["questions"] == 3 and summary["requests_sent"] == 6 and summary["errors"] == 0
    assert len(generations.generations_for(store, "mini", "tiny")) == 6


def test_real_gemma_gguf_answers_a_sample_question(store, tmp_path):
    """Loads the GGUF shipped on PyPI (the first run converts it once: ~1 min on two cores)."""
    import_mini(store, tmp_path, n=1)
    summary = solve.solve(store, "mini", GEMMA_LOCAL, temperature=0)
    assert summary["requests_sent"] == 1 and summary["errors"] == 0
    row = generations.generations_for(store, "mini", GEMMA_LOCAL)[0]
    assert row["response"] and row["output_tokens"] > 0 and row["input_tokens"] > 100


def test_prefill_starts_the_reply_and_changes_the_cache_key(store, tiny_qwen):
    _, tok, _ = local.load(tiny_qwen)
    provider = local.LocalProvider(models.Model("t", "local", tiny_qwen))
    text, _ = provider.prompt(tok, [{"role": "user", "content": "문제"}], GenParams(prefill="정답: "))
    assert text.endswith("정답: ")
    m = models.add_model(store, "pre", "local", tiny_qwen, params={"max_tokens": 3, "temperature": 0,
                                                                    "prefill": "정답: "})
    run = engine.run(store, m, prompts(2))
    assert all(r["response"].startswith("정답: ") for r in run.rows)
    plain = engine.run(store, m, prompts(2), params={"prefill": None})
    assert plain.progress.sent == 2  # a different prefill is a different request


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_prefill_is_refused_where_it_cannot_be_honoured(store, provider):
    with pytest.raises(CoreError, match="prefill"):
        models.add_model(store, "x", provider, "m", base_url="http://127.0.0.1:9/v1", params={"prefill": "정답: "})
