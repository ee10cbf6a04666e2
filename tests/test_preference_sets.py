"""Preference sets: freeze (hash stable, same content no-op, other content refused), import (TRL
JSONL, the original project's prompt/chosen/rejected columns, CSV with a mapping, a datasets folder;
bad rows refused with their line numbers and nothing stored), export round trips (TRL JSONL through
`datasets` and TRL's ORPO data path on the tiny Qwen3, a datasets folder, CSV) and the CLI."""

from __future__ import annotations

import csv
import json

import pytest

from core.cli import main
from core.errors import CoreError, ImportFailed, NotFound
from core.prompts import solve_messages
from core.steps.augment import gates
from core.steps.review import preference_sets as ps
from core.steps.review import review
from core.store import Store
from tests.test_review import RUN, seed_review


@pytest.fixture
def reviewed(store, tmp_path):
    """The review fixture with three pairs accepted (cand-a, cand-b, cand-e)."""
    seed_review(store, tmp_path)
    review.accept_passing(store, RUN)
    return RUN


def write_jsonl(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


def counts(store: Store) -> tuple[int, int]:
    return store.scalar("SELECT count(*) FROM preference_sets"), store.scalar("SELECT count(*) FROM preference_pairs")


def test_freeze_builds_the_solve_prompt_and_a_stable_hash(store, reviewed):
    s = ps.freeze(store, "v1", RUN)
    assert (s["pairs"], s["source"], s["already"]) == (3, f"review:{RUN}", False)
    pairs = ps.get_pairs(store, "v1")
    cand = review.get_pair(store, "cand-a")
    expected, _ = solve_messages(gates.as_question(cand))
    assert pairs[0]["prompt"] == expected and [m["role"] for m in expected] == ["system", "user"]
    assert "<|im_start|>" not in json.dumps(pairs[0]["prompt"])  # no chat template baked in
    assert (pairs[0]["chosen"], pairs[0]["rejected"]) == (cand["chosen"], cand["rejected"])
    assert [p["pair_id"] for p in pairs] == ["cand-a", "cand-b", "cand-e"]
    assert pairs[0]["question"]["choices"] == cand["choices"] and pairs[0]["subject"] == "생활과 윤리"
    assert s["hash"] == ps.content_hash(pairs) and len(s["hash"]) == 64
    # same content: a no-op; same content under another name: the same hash
    again = ps.freeze(store, "v1", RUN)
    assert again["already"] and again["hash"] == s["hash"]
    assert ps.freeze(store, "v1-copy", RUN)["hash"] == s["hash"]
    # other content under the same name: refused, unless replaced
    review.reject(store, "cand-e", "다시 보니 어색하다")
    with pytest.raises(CoreError, match="already exists with other content"):
        ps.freeze(store, "v1", RUN)
    assert ps.get_set(store, "v1")["pairs"] == 3
    replaced = ps.freeze(store, "v1", RUN, replace=True)
    assert replaced["pairs"] == 2 and replaced["hash"] != s["hash"] and replaced["replaced"]
    assert replaced["detail"]["augment_run"] == RUN and replaced["detail"]["run"].startswith("freeze-")


def test_freeze_needs_accepted_pairs(store, tmp_path):
    seed_review(store, tmp_path)
    with pytest.raises(CoreError, match="no accepted pairs"):
        ps.freeze(store, "v1", RUN)
    with pytest.raises(NotFound):
        ps.freeze(store, "v1", "augment-none")
    with pytest.raises(CoreError, match="invalid set name"):
        ps.freeze(store, "bad name/", RUN)
    review.accept(store, ["cand-a", "cand-b"])
    store.execute("UPDATE candidates SET rejected = '' WHERE id = 'cand-b'")  # changed behind Review's back
    with pytest.raises(CoreError, match=r"1 accepted pair\(s\) cannot be frozen: cand-b \(no rejected\)"):
        ps.freeze(store, "v1", RUN)
    assert counts(store) == (0, 0)


SYSTEM = [{"role": "system", "content": "당신은 수능 문제를 푸는 학생입니다."}]


def trl_rows() -> list[dict]:
    return [
        {"prompt": SYSTEM + [{"role": "user", "content": "다음 중 옳은 것은? ① 가 ② 나"}],
         "chosen": [{"role": "assistant", "content": '가가 옳다.\n{"Answer":"1"}'}],
         "rejected": [{"role": "assistant", "content": '나가 옳다.\n{"Answer":"2"}'}]},
        {"prompt": "윗글의 내용과 일치하는 것은?", "chosen": '①이 일치한다.\n{"Answer":"1"}',
         "rejected": '②가 일치한다.\n{"Answer":"2"}'},
    ]


def test_import_trl_jsonl_strings_and_messages(store, tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", trl_rows())
    s = ps.import_pairs(store, path, "ext")
    assert (s["pairs"], s["source"]) == (2, "import:pairs.jsonl")
    pairs = ps.get_pairs(store, "ext")
    assert pairs[0]["prompt"][-1]["role"] == "user" and pairs[0]["chosen"] == '가가 옳다.\n{"Answer":"1"}'
    assert pairs[1]["prompt"] == "윗글의 내용과 일치하는 것은?"  # a string prompt stays a string
    assert ps.import_pairs(store, path, "ext")["already"]
    # TRL's implicit-prompt form: whole conversations in chosen/rejected, no prompt column
    implicit = [{"chosen": SYSTEM + [{"role": "user", "content": "문제"}, {"role": "assistant", "content": "답 1"}],
                 "rejected": SYSTEM + [{"role": "user", "content": "문제"}, {"role": "assistant", "content": "답 2"}]}]
    ps.import_pairs(store, write_jsonl(tmp_path / "implicit.jsonl", implicit), "implicit")
    p = ps.get_pairs(store, "implicit")[0]
    assert p["prompt"][-1] == {"role": "user", "content": "문제"} and (p["chosen"], p["rejected"]) == ("답 1", "답 2")


def test_import_original_project_columns(store, tmp_path):
    """Hyunwoo98/balanced_df_orpo (the seed project's pairs): prompt, chosen, rejected strings plus gold and
    strategy columns, read by its orpo-train with split 'train'; extra columns are kept out and listed."""
    rows = [{"prompt": f"지문 {i}\n\n질문: 옳은 것은?\n\n선택지:\n1. 가\n2. 나\n3. 다\n4. 라\n5. 마",
             "chosen": f'풀이 {i}\n{{"Answer":"{i % 5 + 1}"}}', "rejected": f'오답 풀이 {i}\n{{"Answer":"{(i + 1) % 5 + 1}"}}',
             "gold": i % 5 + 1, "strategy": "A_Correct"} for i in range(4)]
    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(tmp_path / "balanced"))
    s = ps.import_pairs(store, tmp_path / "balanced", "seed-project")
    assert s["pairs"] == 4 and s["detail"]["ignored_columns"] == ["gold", "strategy"]
    assert s["detail"]["prompt"] == "string"
    with (tmp_path / "balanced.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # the same pairs from a CSV: the same content hash
    assert ps.import_pairs(store, tmp_path / "balanced.csv", "seed-csv")["hash"] == s["hash"]
    # trained the way the original did: a student system prompt before each string prompt
    wrapped = ps.import_pairs(store, tmp_path / "balanced", "seed-solve", system="solve")
    p = ps.get_pairs(store, "seed-solve")[0]
    assert [m["role"] for m in p["prompt"]] == ["system", "user"] and p["prompt"][1]["content"] == rows[0]["prompt"]
    assert p["prompt"][0]["content"] == solve_messages({"question": "q", "choices": ["a"] * 5})[0][0]["content"]
    assert wrapped["hash"] != s["hash"] and wrapped["detail"]["system"] == "solve"


def test_import_with_column_mapping(store, tmp_path):
    path = tmp_path / "sheet.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["문제", "좋은답", "나쁜답", "과목"])
        w.writerow(["옳은 것은?", "①\n{\"Answer\":\"1\"}", "②\n{\"Answer\":\"2\"}", "정치와 법"])
    with pytest.raises(ImportFailed, match="no column for chosen, rejected"):
        ps.import_pairs(store, path, "sheet")
    with pytest.raises(ImportFailed, match="not in the file"):
        ps.import_pairs(store, path, "sheet", mapping={"prompt": "문제", "chosen": "없는열", "rejected": "나쁜답"})
    s = ps.import_pairs(store, path, "sheet", mapping={"prompt": "문제", "chosen": "좋은답", "rejected": "나쁜답",
                                                       "subject": "과목"})
    assert s["pairs"] == 1 and ps.get_pairs(store, "sheet")[0]["subject"] == "정치와 법"


def test_import_refuses_bad_rows_with_line_numbers_and_stores_nothing(store, tmp_path):
    good = {"prompt": "문제", "chosen": "답 1", "rejected": "답 2"}
    rows = [good, "", {"prompt": "문제", "chosen": "답 1"}, {"prompt": "  ", "chosen": "a", "rejected": "b"},
            {"prompt": "문제", "chosen": "같다", "rejected": "같다"}, {"prompt": "문제", "chosen": "", "rejected": "b"},
            {"prompt": "문제", "chosen": [{"role": "user", "content": "x"}], "rejected": "b"}, good]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ImportFailed) as err:
        ps.import_pairs(store, path, "bad")
    issues = [str(i) for i in err.value.issues]
    assert issues == ["line 3: missing rejected", "line 4: empty prompt", "line 5: chosen and rejected are identical",
                      "line 6: empty chosen", "line 7: chosen its last message must have role 'assistant'"]
    assert "5 bad row(s); nothing was imported" in err.value.message
    assert counts(store) == (0, 0)
    (tmp_path / "broken.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": \n',
                                           encoding="utf-8")
    with pytest.raises(ImportFailed, match="line 2 is not valid JSON"):
        ps.import_pairs(store, tmp_path / "broken.jsonl", "broken")
    assert counts(store) == (0, 0)
    (tmp_path / "deep.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n' + "[" * 100_000 + "\n",
                                         encoding="utf-8")
    with pytest.raises(ImportFailed, match="line 2 is unreadable: nested too deeply"):  # not a RecursionError
        ps.import_pairs(store, tmp_path / "deep.jsonl", "deep")
    assert counts(store) == (0, 0)
    assert store.scalar("SELECT count(*) FROM runs WHERE step = 'pairs-import'") == 0


# The three crashes fuzzing found (issue 21), each with the exact input: a lone surrogate in a message's
# content (UnicodeEncodeError in the content hash), one in a column name (a DuckDB conversion error
# after the run record was opened: a run left 'running' for ever), a CSV cell nested thousands deep
# in chosen (RecursionError). Each is now refused with its line or row and column, and leaves no run.
@pytest.mark.parametrize("name, content, issue", [
    ("content.jsonl", '{"prompt": [{"role": "user", "content": "q\\ud800"}], "chosen": "a", "rejected": "b"}\n',
     "line 1: column 'prompt': contains an unpaired surrogate (\\ud800): not valid Unicode text"),
    ("column.jsonl", '{"prompt": "p", "chosen": "a", "rejected": "b", "x\\ud800": 1}\n',
     "line 1: column name 'x\\ud800' contains an unpaired surrogate (\\ud800): not valid Unicode text"),
    ("deep.csv", "prompt,chosen,rejected\np,\"" + "[" * 5000 + "]" * 5000 + "\",b\n",
     "row 1: chosen is nested too deeply to read"),
    # found by the 10,000-file fuzz run: the escape is inside a CSV cell's JSON, seen only once decoded
    ("escaped.csv", 'prompt,chosen,rejected\n"[{""role"": ""user"", ""content"": ""q\\ud800""}]",0,00\n',
     "row 1: column 'prompt': contains an unpaired surrogate (\\ud800): not valid Unicode text"),
])
def test_import_refuses_what_fuzzing_crashed_on(store, tmp_path, capsys, name, content, issue):
    path = tmp_path / name
    path.write_text('{"prompt": "p0", "chosen": "a0", "rejected": "b0"}\n' + content if name.endswith(".jsonl")
                    else content, encoding="utf-8")
    with pytest.raises(ImportFailed) as err:
        ps.import_pairs(store, path, "fuzzed")
    line = issue.replace("line 1", "line 2") if name.endswith(".jsonl") else issue
    assert [str(i) for i in err.value.issues] == [line]
    assert counts(store) == (0, 0)
    assert store.scalar("SELECT count(*) FROM runs") == 0
    store.close()
    assert main(["--db", str(store.path), "pairs", "import", str(path), "--name", "fuzzed"]) == 1
    out = capsys.readouterr()
    assert "unexpected" not in out.err and line in out.err


def test_hub_id_offline_is_a_clear_error(store, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CoreError, match="offline") as err:
        ps.import_pairs(store, "Hyunwoo98/balanced_df_orpo", "orig")
    assert "HF_HUB_OFFLINE" in err.value.message
    for missing in ("missing.jsonl", "data/missing.jsonl", "./data/set"):
        with pytest.raises(ImportFailed, match="no such file"):
            ps.import_pairs(store, missing, "orig")
    assert counts(store) == (0, 0)


def test_export_trl_round_trip_through_datasets_and_trl_orpo(store, reviewed, tmp_path):
    """The TRL export loads with `datasets` and goes through TRL's ORPO data path (extract prompt, apply
    the chat template, tokenize) on the tiny Qwen3: the solve prompt survives as the prompt."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from tests.tiny_models import build_tiny_qwen

    ps.freeze(store, "v1", RUN)
    out = ps.export(store, "v1", "trl", tmp_path / "v1.jsonl")
    assert out["pairs"] == 3
    ds = load_dataset("json", data_files=str(tmp_path / "v1.jsonl"), split="train")
    pairs = ps.get_pairs(store, "v1")
    assert ds.column_names == ["prompt", "chosen", "rejected"] and len(ds) == 3
    assert ds[0]["prompt"] == pairs[0]["prompt"]
    assert ds[0]["chosen"] == [{"role": "assistant", "content": pairs[0]["chosen"]}]

    folder = build_tiny_qwen(tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    args = ORPOConfig(output_dir=str(tmp_path / "orpo"), per_device_train_batch_size=1, max_steps=1, report_to=[],
                      max_length=4096, logging_steps=1, save_strategy="no",
                      use_cpu=True, dataset_num_proc=None, beta=0.8)
    trainer = ORPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    row = trainer.train_dataset[0]
    prompt_text = tok.decode(row["prompt_input_ids"])
    system = pairs[0]["prompt"][0]["content"]
    assert prompt_text.startswith("<|im_start|>system\n") and system[:20] in prompt_text
    assert pairs[0]["prompt"][1]["content"][:20] in prompt_text
    chosen_labels = [t for t in row["chosen_labels"] if t != -100]
    assert tok.decode(chosen_labels).startswith(pairs[0]["chosen"][:15])
    assert tok.decode([t for t in row["rejected_labels"] if t != -100]).startswith(pairs[0]["rejected"][:15])
    trainer.train()
    assert trainer.state.global_step == 1
    assert "nll_loss" in trainer.state.log_history[0] or "loss" in trainer.state.log_history[0]


def test_export_hf_folder_and_csv_round_trip(store, reviewed, tmp_path):
    from datasets import load_from_disk

    v1 = ps.freeze(store, "v1", RUN)
    ps.export(store, "v1", "hf", tmp_path / "v1-hf")
    ds = load_from_disk(str(tmp_path / "v1-hf"))
    assert len(ds) == 3 and ds[2]["rejected"][0]["content"] == ps.get_pairs(store, "v1")[2]["rejected"]
    with pytest.raises(CoreError, match="already exists"):
        ps.export(store, "v1", "hf", tmp_path / "v1-hf")
    # the datasets folder and the CSV re-import to the same content hash
    assert ps.import_pairs(store, tmp_path / "v1-hf", "v1-back")["hash"] == v1["hash"]
    ps.export(store, "v1", "csv", tmp_path / "v1.csv")
    with (tmp_path / "v1.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["system"] == ps.get_pairs(store, "v1")[0]["prompt"][0]["content"]
    assert rows[0]["pair_id"] == "cand-a" and rows[0]["subject"] == "생활과 윤리"
    assert ps.import_pairs(store, tmp_path / "v1.csv", "v1-csv")["hash"] == v1["hash"]
    with pytest.raises(CoreError, match="unknown export format"):
        ps.export(store, "v1", "xlsx", tmp_path / "x")
    with pytest.raises(NotFound):
        ps.export(store, "nope", "trl", tmp_path / "x.jsonl")


def test_cli_freeze_import_sets_export(db_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    store = Store(db_env)
    seed_review(store, tmp_path)
    store.close()
    assert main(["pairs", "accept", "--run", RUN, "--passing"]) == 0
    capsys.readouterr()
    assert main(["pairs", "freeze", "v1", "--run", RUN, "--json"]) == 0
    frozen = json.loads(capsys.readouterr().out)
    assert frozen["pairs"] == 3 and frozen["source"] == f"review:{RUN}" and not frozen["already"]
    assert main(["pairs", "freeze", "v1", "--run", RUN]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert main(["pairs", "import", write_jsonl(tmp_path / "ext.jsonl", trl_rows()), "--name", "ext"]) == 0
    capsys.readouterr()
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "b"}])
    assert main(["pairs", "import", bad, "--name", "bad"]) == 1
    err = capsys.readouterr().err
    assert "nothing was imported" in err and "line 1: chosen and rejected are identical" in err
    assert main(["pairs", "sets", "--json"]) == 0
    sets = json.loads(capsys.readouterr().out)
    assert sorted(s["name"] for s in sets) == ["ext", "v1"]
    assert all(set(s) == {"name", "pairs", "source", "hash"} for s in sets)
    assert {s["name"]: s["pairs"] for s in sets} == {"ext": 2, "v1": 3}
    for fmt, out in (("trl", "v1.jsonl"), ("hf", "v1-hf"), ("csv", "v1.csv")):
        assert main(["pairs", "export", "v1", "--format", fmt, "--out", str(tmp_path / out)]) == 0
    assert len((tmp_path / "v1.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    assert main(["pairs", "import", "Hyunwoo98/balanced_df_orpo", "--name", "orig"]) == 1
    assert "offline" in capsys.readouterr().err


def test_freeze_a_real_augment_run(store, tmp_path, monkeypatch):
    """Augment's own rows (tests/test_augment.py's scripted teacher) → bulk accept → freeze → TRL export."""
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    from core.steps.augment import augment
    from core.steps.augment.augment import AugmentConfig
    from tests.loopback import Loopback
    from tests.test_augment import Teacher, mine, seed_data, writer

    tests = seed_data(store, tmp_path)
    mining_run = mine(store)
    with Loopback("gemini", Teacher(tests)) as srv:
        writer(store, srv)
        s = augment.run(store, AugmentConfig(mining_run=mining_run, teacher="writer", per_seed=2))
    accepted = review.accept_passing(store, s["run"])
    assert len(accepted) == s["passed"] > 0
    frozen = ps.freeze(store, "real", s["run"])
    assert frozen["pairs"] == len(accepted) and frozen["detail"]["mining_run"] == mining_run
    pairs = ps.get_pairs(store, "real")
    for p in pairs:
        cand = review.get_pair(store, p["pair_id"])
        assert p["prompt"] == solve_messages(gates.as_question(cand))[0]
        assert p["chosen"] == cand["chosen"] and p["rejected"] == cand["rejected"]
    ps.export(store, "real", "trl", tmp_path / "real.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "real.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["prompt"] for x in lines] == [p["prompt"] for p in pairs]
