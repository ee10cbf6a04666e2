"""`python -m core data …`: import, list --json, export, delete; the store's lock and migrations.

Most tests call `core.cli.main([...])` in-process (fast); a few run the real CLI in a subprocess.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import core.store
from core.cli import main
from core.migrations import all_migrations
from core.store import Store

MIGRATIONS = all_migrations()

ROOT = Path(__file__).resolve().parent.parent
PARA = "다음 글을 읽고 물음에 답하시오. 훈민정음은 1443년에 창제되었다."
CHOICES = ["세종", "태종", "세조", "성종", "정조"]

KICE = [
    {"id": "p1", "paragraph": PARA, "type": 0, "problems": [
        {"question": "윗글의 내용과 일치하는 것은?", "choices": CHOICES, "answer": 1, "score": 2},
        {"question": "윗글을 바탕으로 <보기>를 이해한 것은?", "question_plus": "<보기> 한글의 원리",
         "choices": CHOICES, "answer": 4, "score": 3},
    ]},
    {"id": "p2", "paragraph": "(가) 두 번째 지문이다.", "problems": [
        {"question": "(가)에 대한 설명으로 적절한 것은?", "choices": CHOICES[:4], "answer": 2, "score": 2},
    ]},
]


def kice_file(tmp_path: Path) -> Path:
    path = tmp_path / "kice.json"
    path.write_text(json.dumps(KICE, ensure_ascii=False), encoding="utf-8")
    return path


def boostcamp_file(tmp_path: Path, rows: list[list] | None = None, name: str = "boost.csv") -> Path:
    rows = rows if rows is not None else [
        ["b-1", PARA, repr({"question": "창제 연도는?", "choices": ["1443", "1446", "1392", "1592"], "answer": 1}), ""],
        ["b-2", PARA, repr({"question": "창제한 왕은?", "choices": CHOICES, "answer": 1}), "<보기> 조선"],
    ]
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "paragraph", "problems", "question_plus"])
        w.writerows(rows)
    return path


BAD_ROWS = [
    ["ok-1", PARA, repr({"question": "좋은 문제", "choices": CHOICES, "answer": 2}), ""],
    ["bad-2", PARA, "{'question': '깨진', 'choices': [", ""],
    ["bad-3", PARA, repr({"question": "범위 밖", "choices": CHOICES, "answer": 9}), ""],
]


def cli(capsys, db: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def list_json(capsys, db: Path) -> list[dict]:
    rc, out, err = cli(capsys, db, "data", "list", "--json")
    assert rc == 0, err
    return json.loads(out)


def run_cli(db: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("CSAT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "core", "--db", str(db), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", input=input, timeout=60)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- in-process CLI --------------------------------------------------------------------------


def test_import_and_list_json_contract(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    rc, out, err = cli(capsys, db, "data", "import", str(kice_file(tmp_path)), "--name", "수능2024",
                       "--split", "test", "--subject", "국어")
    assert (rc, err) == (0, "")
    assert out == "Imported 3 questions into '수능2024' (kice, test).\n"
    rc, out, _ = cli(capsys, db, "data", "import", str(boostcamp_file(tmp_path)), "--name", "boost", "--split", "train")
    assert rc == 0 and out == "Imported 2 questions into 'boost' (boostcamp, train).\n"
    assert list_json(capsys, db) == [
        {"name": "수능2024", "split": "test", "questions": 3, "points": 7, "subjects": {"국어": 3}},
        {"name": "boost", "split": "train", "questions": 2, "points": None, "subjects": {"unknown": 2}},
    ]
    rc, out, _ = cli(capsys, db, "data", "list")
    assert rc == 0
    assert out.splitlines() == ["수능2024 [test] 3 questions, 7 points: 국어 3", "boost [train] 2 questions: unknown 2"]


def test_list_json_empty_store(capsys, tmp_path):
    assert list_json(capsys, tmp_path / "empty.duckdb") == []


def test_import_same_file_twice(capsys, tmp_path):
    db, path = tmp_path / "s.duckdb", kice_file(tmp_path)
    assert cli(capsys, db, "data", "import", str(path), "--name", "k", "--split", "test")[0] == 0
    rc, out, _ = cli(capsys, db, "data", "import", str(path), "--name", "k", "--split", "test")
    assert rc == 0 and out == "kice.json is already imported as 'k'; nothing changed.\n"
    assert [d["questions"] for d in list_json(capsys, db)] == [3]


def test_same_name_other_file_needs_replace(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli(capsys, db, "data", "import", str(kice_file(tmp_path)), "--name", "set", "--split", "test")[0] == 0
    rc, out, err = cli(capsys, db, "data", "import", str(boostcamp_file(tmp_path)), "--name", "set", "--split", "test")
    assert rc == 1 and out == ""
    assert err.splitlines()[0] == "Error: a dataset named 'set' already exists with other content"
    assert list_json(capsys, db)[0]["questions"] == 3
    rc, _, _ = cli(capsys, db, "data", "import", str(boostcamp_file(tmp_path)), "--name", "set", "--split", "test",
                   "--replace")
    assert rc == 0
    assert [(d["name"], d["questions"], d["points"]) for d in list_json(capsys, db)] == [("set", 2, None)]


def test_bad_input_exits_1_and_stores_nothing(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli(capsys, db, "data", "import", str(kice_file(tmp_path)), "--name", "keep", "--split", "test")[0] == 0
    path = boostcamp_file(tmp_path, BAD_ROWS, "bad.csv")
    rc, out, err = cli(capsys, db, "data", "import", str(path), "--name", "keep", "--split", "train", "--replace")
    assert rc == 1 and out == ""
    assert err.splitlines() == [
        "Error: 2 bad row(s) in bad.csv; nothing was imported",
        "  row 2 (id bad-2): problems is not a readable Python-literal dict",
        "  row 3 (id bad-3): answer 9 is out of range 1–5",
        "Hint: fix them, or import with --skip-bad to leave them out",
    ]
    assert "Traceback" not in err
    assert list_json(capsys, db) == [
        {"name": "keep", "split": "test", "questions": 3, "points": 7, "subjects": {"unknown": 3}}]


def test_skip_bad_lists_what_it_skipped(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    path = boostcamp_file(tmp_path, BAD_ROWS, "bad.csv")
    rc, out, err = cli(capsys, db, "data", "import", str(path), "--name", "b", "--split", "train", "--skip-bad")
    assert (rc, err) == (0, "")
    assert out.splitlines() == [
        "Imported 1 questions into 'b' (boostcamp, train).",
        "Skipped 2 bad row(s):",
        "  row 2 (id bad-2): problems is not a readable Python-literal dict",
        "  row 3 (id bad-3): answer 9 is out of range 1–5",
    ]
    out_file = tmp_path / "b.jsonl"
    assert cli(capsys, db, "data", "export", "b", "--out", str(out_file))[0] == 0
    assert [q["id"] for q in read_jsonl(out_file)] == ["ok-1"]


@pytest.mark.parametrize("args, message", [
    (["--split", "dev"], "Error: unknown split 'dev'"),
    (["--split", "train", "--format", "xml"], "Error: unknown format 'xml'"),
    (["--split", "train", "--map", "question"], "Error: --map takes KEY=VALUE (got 'question')"),
    (["--split", "train", "--format", "generic", "--map", "stem=문항"], "Error: unknown mapping field(s) stem"),
    (["--split", "train", "--format", "kmmlu"],
     "Error: kice.json lacks column(s) question, A, B, C, D, answer of the KMMLU format"),
])
def test_import_usage_errors(capsys, tmp_path, args, message):
    db = tmp_path / "s.duckdb"
    rc, out, err = cli(capsys, db, "data", "import", str(kice_file(tmp_path)), "--name", "x", *args)
    assert rc == 1
    assert err.splitlines()[0] == message
    assert "Traceback" not in err
    assert list_json(capsys, db) == []


def test_import_missing_and_garbage_files(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    rc, _, err = cli(capsys, db, "data", "import", str(tmp_path / "없음.csv"), "--name", "x", "--split", "train")
    assert rc == 1 and err.startswith("Error: ") and "없음.csv does not exist" in err
    garbage = tmp_path / "photo.csv"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    rc, _, err = cli(capsys, db, "data", "import", str(garbage), "--name", "x", "--split", "train")
    assert rc == 1 and err.startswith("Error: photo.csv is not readable text")


def test_generic_mapping_via_cli(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    path = tmp_path / "mine.csv"
    path.write_text("번호,문항,A,B,C,D,정답\n1,하늘의 색은?,파랑,빨강,초록,노랑,1\n2,바다의 맛은?,단맛,짠맛,쓴맛,신맛,②\n",
                    encoding="utf-8")
    rc, out, err = cli(capsys, db, "data", "import", str(path), "--name", "g", "--split", "seed", "--format", "generic",
                       "--map", "id=번호", "--map", "question=문항", "--map", "choices=A,B,C,D", "--map", "answer=정답",
                       "--subject", "과학")
    assert (rc, err) == (0, ""), err
    assert out == "Imported 2 questions into 'g' (generic, seed).\n"
    assert list_json(capsys, db) == [
        {"name": "g", "split": "seed", "questions": 2, "points": None, "subjects": {"과학": 2}}]
    out_file = tmp_path / "sub.csv"
    assert cli(capsys, db, "data", "export", "g", "--format", "submission", "--out", str(out_file))[0] == 0
    assert out_file.read_text(encoding="utf-8").splitlines() == ["id,answer", "1,1", "2,2"]


def test_export_reimport_round_trip(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli(capsys, db, "data", "import", str(kice_file(tmp_path)), "--name", "k", "--split", "test",
               "--subject", "국어")[0] == 0
    first = tmp_path / "out" / "k.jsonl"
    rc, out, _ = cli(capsys, db, "data", "export", "k", "--format", "jsonl", "--out", str(first))
    assert rc == 0 and out == f"Wrote 3 questions to {first}.\n"
    rows = read_jsonl(first)
    assert rows[1] == {"id": "2", "passage_id": "p1", "paragraph": PARA, "question": "윗글을 바탕으로 <보기>를 이해한 것은?",
                       "question_plus": "<보기> 한글의 원리", "choices": CHOICES, "answer": 4, "points": 3.0,
                       "subject": "국어"}
    rc, out, _ = cli(capsys, db, "data", "import", str(first), "--name", "k2", "--split", "seed")
    assert rc == 0 and out == "Imported 3 questions into 'k2' (generic, seed).\n"
    second = tmp_path / "k2.jsonl"
    assert cli(capsys, db, "data", "export", "k2", "--out", str(second))[0] == 0
    assert read_jsonl(second) == rows
    listed = list_json(capsys, db)
    assert [{k: v for k, v in d.items() if k != "name"} for d in listed] == [
        {"split": "test", "questions": 3, "points": 7, "subjects": {"국어": 3}},
        {"split": "seed", "questions": 3, "points": 7, "subjects": {"국어": 3}},
    ]


def test_export_submission_and_errors(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli(capsys, db, "data", "import", str(kice_file(tmp_path)), "--name", "k", "--split", "test")[0] == 0
    sub = tmp_path / "submission.csv"
    assert cli(capsys, db, "data", "export", "k", "--format", "submission", "--out", str(sub))[0] == 0
    assert sub.read_text(encoding="utf-8").splitlines() == ["id,answer", "1,1", "2,4", "3,2"]
    rc, _, err = cli(capsys, db, "data", "export", "k", "--format", "xlsx", "--out", str(tmp_path / "x.xlsx"))
    assert rc == 1 and err.splitlines()[0] == "Error: unknown export format 'xlsx'"
    rc, _, err = cli(capsys, db, "data", "export", "없음", "--out", str(tmp_path / "x.jsonl"))
    assert rc == 1 and err.splitlines() == ["Error: no dataset named '없음'", "Hint: datasets: k"]


def test_submission_of_a_test_set_without_answers(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    rows = [["t-1", PARA, repr({"question": "문제 하나", "choices": CHOICES}), ""],
            ["t-2", PARA, repr({"question": "문제 둘", "choices": CHOICES}), ""]]
    assert cli(capsys, db, "data", "import", str(boostcamp_file(tmp_path, rows)), "--name", "t", "--split", "test")[0] == 0
    sub = tmp_path / "sub.csv"
    assert cli(capsys, db, "data", "export", "t", "--format", "submission", "--out", str(sub))[0] == 0
    assert sub.read_text(encoding="utf-8").splitlines() == ["id,answer", "t-1,", "t-2,"]


def test_show_and_delete(capsys, tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli(capsys, db, "data", "import", str(kice_file(tmp_path)), "--name", "k", "--split", "test")[0] == 0
    rc, out, _ = cli(capsys, db, "data", "show", "k", "--search", "보기", "--limit", "5")
    assert rc == 0
    assert out.startswith("── 2 · unknown · 정답 4\n" + PARA + "\n\n2. 윗글을 바탕으로 <보기>를 이해한 것은? [3점]\n\n<보기> 한글의 원리\n\n① 세종")
    assert "── 1 ·" not in out
    rc, out, _ = cli(capsys, db, "data", "delete", "k", "--yes")
    assert rc == 0 and out == "Deleted 'k' (3 questions).\n"
    assert list_json(capsys, db) == []
    rc, _, err = cli(capsys, db, "data", "delete", "k", "--yes")
    assert rc == 1 and err.splitlines()[0] == "Error: no dataset named 'k'"


# --- store: migrations -----------------------------------------------------------------------


def test_reopening_a_store_applies_nothing_new(tmp_path):
    path = tmp_path / "m.duckdb"
    s = Store(path)
    first = s.rows("SELECT name, applied_at FROM schema_migrations ORDER BY name")
    assert [r["name"] for r in first] == sorted(n for n, _ in MIGRATIONS)
    assert first[0]["name"] == "m001_initial"
    s.close()
    s = Store(path)
    try:
        assert s.migrate() == []
        assert s.rows("SELECT name, applied_at FROM schema_migrations ORDER BY name") == first
        assert s.schema_version() == len(MIGRATIONS)
    finally:
        s.close()


def test_older_store_gets_later_migrations(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(core.store, "all_migrations", lambda: [m for m in MIGRATIONS if m[0] == "m001_initial"])
    old = Store(path)
    assert [r["name"] for r in old.rows("SELECT name FROM schema_migrations")] == ["m001_initial"]
    old.execute("INSERT INTO datasets (name, split) VALUES ('legacy', 'train')")
    old.close()

    def m999_notes(con):
        con.execute("CREATE TABLE notes (dataset VARCHAR, note VARCHAR)")

    monkeypatch.setattr(core.store, "all_migrations", lambda: [*MIGRATIONS, ("m999_notes", m999_notes)])
    s = Store(path)
    try:
        names = [r["name"] for r in s.rows("SELECT name FROM schema_migrations ORDER BY name")]
        assert names == sorted([n for n, _ in MIGRATIONS] + ["m999_notes"])
        s.execute("INSERT INTO notes VALUES ('legacy', '메모')")
        assert s.scalar("SELECT name FROM datasets") == "legacy"
        assert s.migrate() == []
    finally:
        s.close()


# --- real subprocesses -----------------------------------------------------------------------


def test_subprocess_round_trip(tmp_path):
    db = tmp_path / "cli.duckdb"
    r = run_cli(db, "data", "import", str(kice_file(tmp_path)), "--name", "kice", "--split", "test", "--subject", "국어")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Imported 3 questions into 'kice' (kice, test)."
    r = run_cli(db, "data", "list", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [
        {"name": "kice", "split": "test", "questions": 3, "points": 7, "subjects": {"국어": 3}}]

    exported = tmp_path / "kice.jsonl"
    r = run_cli(db, "data", "export", "kice", "--format", "jsonl", "--out", str(exported))
    assert r.returncode == 0, r.stderr
    r = run_cli(db, "data", "import", str(exported), "--name", "again", "--split", "train", "--format", "generic")
    assert r.returncode == 0, r.stderr
    again = tmp_path / "again.jsonl"
    assert run_cli(db, "data", "export", "again", "--out", str(again)).returncode == 0
    assert read_jsonl(again) == read_jsonl(exported)
    assert [q["question"] for q in read_jsonl(again)] == [p["question"] for k in KICE for p in k["problems"]]

    sub = tmp_path / "submission.csv"
    r = run_cli(db, "data", "export", "again", "--format", "submission", "--out", str(sub))
    assert r.returncode == 0, r.stderr
    assert sub.read_text(encoding="utf-8").splitlines() == ["id,answer", "1,1", "2,4", "3,2"]

    r = run_cli(db, "data", "delete", "again", input="n\n")
    assert (r.returncode, r.stderr) == (1, "Deleting 'again' removes: 3 questions, 2 passages, 1 datasets\nAborted.\n")
    assert "again" in [d["name"] for d in json.loads(run_cli(db, "data", "list", "--json").stdout)]
    r = run_cli(db, "data", "delete", "again", "--yes")
    assert r.returncode == 0 and r.stdout.strip() == "Deleted 'again' (3 questions)."
    assert [d["name"] for d in json.loads(run_cli(db, "data", "list", "--json").stdout)] == ["kice"]


def test_subprocess_bad_input(tmp_path):
    db = tmp_path / "cli.duckdb"
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"question": "문제", "choices": ["가", "나"]}\n{"question": \n', encoding="utf-8")
    r = run_cli(db, "data", "import", str(bad), "--name", "x", "--split", "train")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: broken.jsonl, line 2: not valid JSON")
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_store_in_use_by_another_process(tmp_path):
    db = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('ready',flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        r = run_cli(db, "data", "list", "--json")
        assert r.returncode != 0
        assert r.stdout == ""
        assert "Traceback" not in r.stderr
        errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1
        assert " in use" in errors[0] and str(db) in errors[0]
        assert r.stderr.splitlines()[0] == errors[0]
        assert f"another program, PID {holder.pid}" in errors[0]  # from DuckDB's message (no sidecar)
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_usage_errors_are_one_plain_line_with_a_hint(capsys, tmp_path):
    from core.cli import main

    db = str(tmp_path / "u.duckdb")
    for argv, message in ((["data", "show", "x", "--subject", "정치와", "법"], "unexpected extra argument"),
                          (["data", "import"], "Missing argument 'file'"),
                          (["data", "list", "--bogus"], "No such option: --bogus")):
        assert main(["--db", db, *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and message in err and "Traceback" not in err and "unexpected Usage" not in err
        assert err.splitlines()[-1] == "Hint: add --help to the command to see its arguments"
