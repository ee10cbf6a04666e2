"""`batch ray` (core/raymine.py): a step's missing requests answered through Ray Data's LLM HTTP
processor on a local Ray (CPU) against a counting loopback OpenAI-compatible server; the replies are
stored as live calls store them, so the live solve and mine then send nothing for them."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from loopback import Loopback, Reply
from minidata import import_mini

from core import batchfile, models
from core.cli import main
from core.errors import CoreError
from core.providers.base import ProviderError
from core.steps.mine import mining
from core.steps.solve import solve
from core.store import Store

ROOT = Path(__file__).resolve().parent.parent
# What differs between two runs of the same request: when and how long, and which job.
VOLATILE = {"created_at", "latency_s", "attempts", "job_id"}


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="ray is an optional extra: pip install -r requirements-ray.txt")
    pytest.importorskip("aiohttp", reason="ray.data.llm's HTTP stage needs aiohttp (requirements-ray.txt)")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def script(n, body):
    """The teacher answers the gold answer (q_i: (i-1) % 5 + 1), the student always 1."""
    i = int(re.search(r"\((\d+)\)", body["messages"][-1]["content"]).group(1))
    ans = (i - 1) % 5 + 1 if body["model"] == "teacher-m" else 1
    return Reply(text=f"지문에 따르면 {ans}번이 옳다.\n{{\"Answer\":\"{ans}\"}}")


def register(store, srv, **params):
    for name in ("teacher", "student"):
        models.add_model(store, name, "openai", f"{name}-m", base_url=srv.base_url, replace=True,
                         params={"retry_base_s": 0.01, "timeout_s": 10, "thinking": False, "max_tokens": 256,
                                 **params})


def generation_rows(store):
    cols = [c for c in store.rows("SELECT * FROM generations LIMIT 1")[0] if c not in VOLATILE]
    return store.rows(f"SELECT {', '.join(cols)} FROM generations ORDER BY cache_key")


def canon(bodies):
    return sorted(json.dumps(b, sort_keys=True, ensure_ascii=False) for b in bodies)


def test_mining_over_ray_stores_what_live_mining_would_and_then_sends_nothing(ray_local, tmp_path):
    from core import raymine

    config = mining.MiningConfig(pool="mini", teacher="teacher", student="student", samples=2, temperature=0.7)
    with Loopback("openai", script) as srv:
        # The live run, in a store of its own: the reference rows and bodies.
        live = Store(tmp_path / "live.duckdb")
        import_mini(live, tmp_path, n=6)
        register(live, srv)
        mining.run(live, config)
        live_bodies = [r["body"] for r in srv.requests]
        assert len(live_bodies) == 2 * 6 * 2
        # The Ray run: mine's teacher and student requests answered through Ray Data.
        store = Store(tmp_path / "ray.duckdb")
        import_mini(store, tmp_path, n=6)
        register(store, srv)
        reqs = batchfile.step_requests(store, "mine", "mini", samples=2)
        before = srv.count
        for who in ("teacher", "student"):
            s = raymine.run(store, models.get_model(store, who), reqs, {"temperature": 0.7}, batch_size=4)
            assert s["requests"] == 12 and s["sent"] == 12 and s["recorded"] == 12 and s["problems"] == []
            assert s["answered"] == 12 and s["input_tokens"] == 12 * 11 and s["output_tokens"] == 12 * 7
        ray_bodies = [r["body"] for r in srv.requests[before:]]
        assert srv.count - before == 24
        assert canon(ray_bodies) == canon(live_bodies)  # the exact bodies live calls send
        assert "윗글" in ray_bodies[0]["messages"][-1]["content"]
        # Live mining (and solve) now finds every teacher/student reply stored: nothing is sent.
        before = srv.count
        summary = mining.run(store, config)
        assert srv.count == before and summary["requests_sent"] == 0 and summary["cached"] == 24
        assert solve.solve(store, "mini", "student", samples=2, temperature=0.7)["requests_sent"] == 0
        assert srv.count == before
        # Same generation rows as the live run wrote (timings and job ids aside), same mined items.
        assert generation_rows(store) == generation_rows(live)
        items = "SELECT qid, outcome, kept, teacher_answers, student_answers FROM mining_items ORDER BY qid"
        assert store.rows(items) == live.rows(items)
        assert sum(r["outcome"] == "hard_negative" for r in store.rows(items)) == 4
        # Nothing is left to send: a second Ray run sends nothing.
        again = raymine.run(store, models.get_model(store, "teacher"), reqs, {"temperature": 0.7})
        assert again["sent"] == 0 and again["cached"] == 12 and srv.count == before
        store.close()
        live.close()


def test_an_error_reply_is_reported_and_costs_the_others_nothing(ray_local, tmp_path, capsys, store):
    import_mini(store, tmp_path, n=4)
    with Loopback("openai", lambda n, b: Reply(status=500) if n == 1 else script(n, b)) as srv:
        register(store, srv, max_retries=0)
        store.close()
        db = str(tmp_path / "test.duckdb")
        code = main(["--db", db, "batch", "ray", "--step", "mine", "--dataset", "mini", "--model", "student",
                     "--model", "teacher", "--json"])
        out, err = capsys.readouterr()
        assert code == 1 and srv.count == 8
        assert [(s["model"], s["recorded"], len(s["problems"])) for s in json.loads(out)] == [
            ("student", 3, 1), ("teacher", 4, 0)]
        assert "scripted 500" in err and "Error: 1 reply(ies) were errors" in err and "Hint: run the same" in err
        # The live step sends only the one that failed.
        s = Store(db)
        assert solve.solve(s, "mini", "student")["requests_sent"] == 1 and srv.count == 9
        assert solve.solve(s, "mini", "teacher")["requests_sent"] == 0 and srv.count == 9
        s.close()


def test_a_dead_server_fails_with_one_line_and_a_gemini_model_is_refused(ray_local, tmp_path, store):
    from core import raymine

    import_mini(store, tmp_path, n=2)
    models.add_model(store, "dead", "openai", "m", base_url="http://127.0.0.1:9/v1",
                     params={"max_retries": 0, "retry_base_s": 0.01})
    models.add_model(store, "g", "gemini", "gemini-2.5-flash")
    reqs = batchfile.step_requests(store, "solve", "mini")
    with pytest.raises(CoreError) as exc:
        raymine.run(store, models.get_model(store, "g"), reqs)
    assert "gemini model" in exc.value.message
    with pytest.raises(CoreError) as exc:
        raymine.run(store, models.get_model(store, "dead"), reqs)
    assert "stopped after 0 of 2 replies" in exc.value.message and "127.0.0.1:9" in exc.value.hint
    assert store.scalar("SELECT count(*) FROM generations") == 0


def test_nothing_in_core_imports_ray_or_raymine_at_module_level():
    wrong = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level only
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            names += [f"{node.module}.{a.name}" for a in getattr(node, "names", [])
                      if isinstance(node, ast.ImportFrom) and node.module]
            wrong += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "ray" or n == "core.raymine"]
    assert wrong == []


def test_the_vllm_replica_path_is_assembled_as_ray_documents_it(ray_local):
    """Not run (no CUDA, no vllm here): the processor Ray builds for a `vllm` model, and what its
    pre/post steps make of a row and of the vLLM stage's documented output columns."""
    from core import engine, raymine
    from core.models import Model, ModelParams

    m = Model("v", "vllm", "Qwen/Qwen3-14B-AWQ", params=ModelParams(tensor_parallel_size=2, max_tokens=64,
                                                                      thinking=False))
    gen = engine.resolve_params(m, {"temperature": 0.7})
    proc = raymine._vllm_processor(m, gen, 3, 16)
    stages = {type(s).__name__: s.fn_constructor_kwargs for s in proc.stages.values()}
    assert list(stages) == ["ChatTemplateStage", "TokenizeStage", "vLLMEngineStage", "DetokenizeStage"]
    assert stages["ChatTemplateStage"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert stages["vLLMEngineStage"]["engine_kwargs"]["tensor_parallel_size"] == 2
    assert stages["vLLMEngineStage"]["should_continue_on_error"] is True
    messages = [{"role": "user", "content": "윗글의 내용과 일치하지 않는 것은?"}]
    [(column, data)] = proc.preprocess({"custom_id": "k1", "messages": json.dumps(messages, ensure_ascii=False)}).items()
    assert data["messages"] == messages and data["sampling_params"] == {"temperature": 0.7, "max_tokens": 64}
    out = {**data, "generated_text": '{"Answer":"2"}', "num_input_tokens": 30, "num_generated_tokens": 64}
    res = raymine._result(proc.postprocess({column: out}))
    assert (res.text, res.input_tokens, res.output_tokens, res.truncated) == ('{"Answer":"2"}', 30, 64, True)
    failed = proc.postprocess({column: {**data, "__inference_error__": "CUDA out of memory"}})
    with pytest.raises(ProviderError, match="CUDA out of memory"):
        raymine._result(failed)
