"""Batch files (core/batchfile.py, `batch write` / `batch read`): a step's requests written as OpenAI
Batch JSONL, answered outside the product, read back; the live step then sends nothing."""

from __future__ import annotations

import json

from loopback import Loopback, Reply, answer_batch_file
from minidata import import_mini

from core import batchfile, generations, models
from core.cli import main
from core.steps.solve import solve
from core.store import Store


def register(store, srv, name="srv", **params):
    return models.add_model(store, name, "openai", "qwen3-14b", base_url=srv.base_url,
                            params={"retry_base_s": 0.01, "timeout_s": 5, **params}, replace=True)


def lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_a_45_question_solve_answered_as_a_batch_sends_nothing_live(store, tmp_path):
    import_mini(store, tmp_path, n=45)  # gold answers cycle 1..5; the batch engine always says 1
    with Loopback("openai") as srv:
        m = register(store, srv)
        reqs = batchfile.step_requests(store, "solve", "mini", samples=1)
        s = batchfile.write(store, m, reqs, tmp_path / "in.jsonl", {"temperature": 0.7})
        assert s == {"requests": 45, "cached": 0, "written": 45, "file": str(tmp_path / "in.jsonl")}
        written = lines(tmp_path / "in.jsonl")
        assert len({w["custom_id"] for w in written}) == 45
        assert answer_batch_file(tmp_path / "in.jsonl", tmp_path / "out.jsonl") == 45
        got = batchfile.read(store, m, tmp_path / "out.jsonl")
        assert got["recorded"] == 45 and got["answered"] == 45 and got["problems"] == []
        assert got["input_tokens"] == 45 * 11 and got["output_tokens"] == 45 * 7
        # The report counts them, and the live step finds every one in the cache.
        live = generations.live_summary(store, "mini", "srv")
        assert live["finished"] == 45 and live["answered"] == 45 and live["accuracy"] == 9 / 45
        summary = solve.solve(store, "mini", "srv", temperature=0.7)
        assert summary["requests_sent"] == 0 and summary["cached"] == 45
        assert summary["answered"] == 45 and summary["correct"] == 9
        assert srv.count == 0
        # Read twice: nothing changes; written again: nothing is left to write.
        before = store.rows("SELECT cache_key, created_at FROM generations ORDER BY cache_key")
        again = batchfile.read(store, m, tmp_path / "out.jsonl")
        assert again["recorded"] == 0 and again["already_stored"] == 45
        assert store.rows("SELECT cache_key, created_at FROM generations ORDER BY cache_key") == before
        assert batchfile.write(store, m, reqs, tmp_path / "in2.jsonl", {"temperature": 0.7})["written"] == 0


def test_a_line_carries_the_exact_body_a_live_call_sends(store, tmp_path):
    import_mini(store, tmp_path, n=3)
    with Loopback("openai") as srv:
        m = register(store, srv, thinking=False, max_tokens=512)
        batchfile.write(store, m, batchfile.step_requests(store, "solve", "mini", samples=2), tmp_path / "in.jsonl",
                        {"temperature": 0.3})
        written = [w["body"] for w in lines(tmp_path / "in.jsonl")]
        solve.solve(store, "mini", "srv", samples=2, temperature=0.3)
        assert srv.count == 6
        sent = [r["body"] for r in srv.requests]
        def canon(b):
            return json.dumps(b, sort_keys=True)
        assert sorted(map(canon, sent)) == sorted(map(canon, written))
        assert sent[0]["chat_template_kwargs"] == {"enable_thinking": False} and sent[0]["max_tokens"] == 512
        assert "윗글" in sent[0]["messages"][-1]["content"]  # Korean kept as is


def test_bad_lines_are_reported_by_number_and_cost_the_others_nothing(store, tmp_path, capsys):
    import_mini(store, tmp_path, n=4)
    with Loopback("openai") as srv:
        m = register(store, srv)
        batchfile.write(store, m, batchfile.step_requests(store, "solve", "mini"), tmp_path / "in.jsonl")
    answer_batch_file(tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                      lambda n, b: Reply(status=500) if n == 1 else Reply())
    out = lines(tmp_path / "out.jsonl")
    out[2] = {**out[2], "response": None, "error": {"code": "batch_expired", "message": "expired"}}
    text = [json.dumps(o, ensure_ascii=False) for o in out]
    text[3] = text[3][:40]  # torn
    text.append(json.dumps({**out[0], "custom_id": "someone-else"}))
    (tmp_path / "out.jsonl").write_text("\n".join(text) + "\n", encoding="utf-8")
    store.close()
    code = main(["--db", str(tmp_path / "test.duckdb"), "batch", "read", str(tmp_path / "out.jsonl"),
                 "--model", "srv"])
    err = capsys.readouterr().err
    assert code == 1
    assert "line 2: HTTP 500" in err and "line 3: error: expired" in err and "line 4: not JSON" in err
    assert "line 5: unknown custom_id 'someone-else'" in err and "Error: 4 line(s)" in err
    s = Store(tmp_path / "test.duckdb")
    assert s.scalar("SELECT count(*) FROM generations") == 1
    s.close()


def test_mine_writes_gold_questions_and_gemini_is_pointed_to_its_batch_api(store, tmp_path, capsys):
    import_mini(store, tmp_path, n=3)
    import_mini(store, tmp_path, n=2, name="nogold", answers=False)
    models.add_model(store, "g", "gemini", "gemini-2.5-flash")
    with Loopback("openai") as srv:
        register(store, srv)
    store.close()
    db = str(tmp_path / "test.duckdb")
    code = main(["--db", db, "batch", "write", "--step", "mine", "--dataset", "nogold", "--model", "srv",
                 "--samples", "2", "--out", str(tmp_path / "m.jsonl"), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["written"] == 0
    code = main(["--db", db, "batch", "write", "--step", "mine", "--dataset", "mini", "--model", "srv",
                 "--samples", "2", "--out", str(tmp_path / "m.jsonl")])
    assert code == 0 and "Wrote 6 request(s)" in capsys.readouterr().out
    code = main(["--db", db, "batch", "write", "--dataset", "mini", "--model", "g", "--out", str(tmp_path / "g.jsonl")])
    err = capsys.readouterr().err
    assert code == 1 and "Gemini" in err and "batch=true" in err
    code = main(["--db", db, "batch", "write", "--step", "augment", "--dataset", "mini", "--model", "srv",
                 "--out", str(tmp_path / "a.jsonl")])
    assert code == 1 and "not 'augment'" in capsys.readouterr().err
