"""Importers (core.steps.data.formats) and the all-or-nothing import into the store (core.steps.data.datasets).

Every fixture file is built in tmp_path: Korean text, UTF-8 unless a test says otherwise.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path

import pytest

import core.steps.data.formats.base as base
from core.errors import ImportFailed
from core.steps.data import datasets
from core.steps.data.formats import detect_format, parse_file
from core.steps.data.formats.base import parse_answer, parse_choices

PARA_A = "다음 글을 읽고 물음에 답하시오. 철수는 아침마다 운동을 한다."
PARA_B = "(가) 조선 후기의 실학자들은 현실 개혁을 주장하였다."
CHOICES5 = ["하나", "둘", "셋", "넷", "다섯"]


# --- fixture builders ------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def problem(question: str = "윗글의 내용과 일치하는 것은?", choices=None, answer: int | None = 1, **more) -> str:
    d: dict = {"question": question, "choices": list(CHOICES5 if choices is None else choices)}
    if answer is not None:
        d["answer"] = answer
    d.update(more)
    return repr(d)  # a Python literal, as in the Boostcamp files


def boostcamp_file(path: Path, rows: list[list], encoding: str = "utf-8") -> Path:
    return write_csv(path, ["id", "paragraph", "problems", "question_plus"], rows, encoding)


def good_boostcamp(path: Path, answers: bool = True) -> Path:
    a = (lambda n: n) if answers else (lambda n: None)
    return boostcamp_file(path, [
        ["gen-1", PARA_A, problem("철수가 하는 일은?", answer=a(2)), ""],
        ["gen-2", PARA_A, problem("윗글에 대한 설명으로 적절한 것은?", answer=a(5),
                                  question_plus="<보기> 철수는 학생이다."), ""],
        ["gen-3", PARA_B, problem("(가)의 주장으로 옳은 것은?", choices=["가", "나", "다", "라"], answer=a(4)),
         "ㄱ. 실학 ㄴ. 성리학"],
    ])


KICE = [
    {"id": "2024_1-3", "paragraph": PARA_A, "type": 0, "problems": [
        {"question": "윗글의 내용과 일치하지 않는 것은?", "choices": CHOICES5, "answer": 3, "score": 2},
        {"question": "윗글을 바탕으로 <보기>를 이해한 것은?", "question_plus": "<보기> 영희는 교사이다.",
         "choices": CHOICES5, "answer": 1, "score": 3},
    ]},
    {"id": "2024_4", "paragraph": PARA_B, "problems": [
        {"question": "(가)에 대한 설명으로 적절한 것은?", "choices": CHOICES5, "answer": "5", "score": 2},
    ]},
]


def kice_file(path: Path, data=None) -> Path:
    path.write_text(json.dumps(KICE if data is None else data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def kmmlu_file(path: Path, encoding: str = "utf-8") -> Path:
    return write_csv(path, ["question", "A", "B", "C", "D", "answer", "Category"], [
        ["대한민국의 수도는?", "서울", "부산", "대구", "광주", 1, "한국사"],
        ["조선을 건국한 사람은?", "왕건", "이성계", "이방원", "세종", 2, "한국사"],
        ["칸트의 윤리학에서 중시하는 것은?", "결과", "쾌락", "의무", "행복", 3, "윤리와 사상"],
    ], encoding)


def jsonl_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def stored(store, name: str) -> list[dict]:
    return store.rows("SELECT * FROM questions WHERE dataset = ? ORDER BY position", [name])


def n_questions(store) -> int:
    return store.scalar("SELECT count(*) FROM questions")


def n_datasets(store) -> int:
    return store.scalar("SELECT count(*) FROM datasets")


# --- Boostcamp -------------------------------------------------------------------------------


def test_boostcamp_parse(tmp_path):
    parsed = parse_file(good_boostcamp(tmp_path / "train.csv"))
    assert parsed.format == "boostcamp"
    assert parsed.issues == []
    recs = parsed.records
    assert [r.qid for r in recs] == ["gen-1", "gen-2", "gen-3"]
    assert [r.answer for r in recs] == [2, 5, 4]
    assert [len(r.choices) for r in recs] == [5, 5, 4]
    assert recs[0].choices == CHOICES5
    assert recs[0].question == "철수가 하는 일은?"
    assert recs[0].paragraph == PARA_A
    # rows repeating a passage share it; another passage gets another id
    assert recs[0].passage_id == recs[1].passage_id
    assert recs[2].passage_id not in (None, recs[0].passage_id)
    # question_plus from the problems dict, or from its own column
    assert recs[0].extra is None
    assert recs[1].extra == "<보기> 철수는 학생이다."
    assert recs[2].extra == "ㄱ. 실학 ㄴ. 성리학"
    assert [r.points for r in recs] == [None, None, None]


def test_boostcamp_import(store, tmp_path):
    result = datasets.import_file(store, good_boostcamp(tmp_path / "train.csv"), "boost", "train")
    assert (result.imported, result.format, result.already, result.skipped) == (3, "boostcamp", False, [])
    assert store.scalar("SELECT count(*) FROM passages WHERE dataset = 'boost'") == 2
    rows = stored(store, "boost")
    assert [r["qid"] for r in rows] == ["gen-1", "gen-2", "gen-3"]
    assert [r["position"] for r in rows] == [0, 1, 2]
    assert rows[0]["passage_id"] == rows[1]["passage_id"] != rows[2]["passage_id"]
    assert list(rows[2]["choices"]) == ["가", "나", "다", "라"]
    assert {(r["subject"], r["subject_source"]) for r in rows} == {("unknown", "unknown")}
    ds = store.rows("SELECT * FROM datasets")[0]
    assert (ds["name"], ds["split"], ds["format"], ds["source"], ds["n_questions"]) == (
        "boost", "train", "boostcamp", "train.csv", 3)
    [listed] = datasets.list_datasets(store)
    assert (listed["questions"], listed["points"], listed["subjects"]) == (3, None, {"unknown": 3})
    # questions() joins the passage text back
    assert [q["paragraph"] for q in datasets.questions(store, "boost")] == [PARA_A, PARA_A, PARA_B]


def test_boostcamp_subject_given_at_import(store, tmp_path):
    datasets.import_file(store, good_boostcamp(tmp_path / "t.csv"), "b", "seed", subject="국어")
    assert {(r["subject"], r["subject_source"]) for r in stored(store, "b")} == {("국어", "import")}


def test_boostcamp_subject_column_wins(store, tmp_path):
    path = write_csv(tmp_path / "s.csv", ["id", "paragraph", "problems", "question_plus", "subject"], [
        ["s-1", PARA_A, problem(), "", "생활과 윤리"],
        ["s-2", PARA_A, problem(), "", ""],
    ])
    datasets.import_file(store, path, "s", "train", subject="국어")
    assert [(r["subject"], r["subject_source"]) for r in stored(store, "s")] == [
        ("생활과 윤리", "column"), ("국어", "import")]


def test_boostcamp_test_file_without_answers(store, tmp_path):
    path = good_boostcamp(tmp_path / "test.csv", answers=False)
    assert [r.answer for r in parse_file(path).records] == [None, None, None]
    datasets.import_file(store, path, "boost-test", "test")
    assert [r["answer"] for r in stored(store, "boost-test")] == [None, None, None]


# --- KICE ------------------------------------------------------------------------------------


def test_kice_parse(tmp_path):
    parsed = parse_file(kice_file(tmp_path / "2024.json"))
    assert parsed.format == "kice"
    recs = parsed.records
    assert [r.qid for r in recs] == ["1", "2", "3"]  # question numbers in file order
    assert [r.points for r in recs] == [2.0, 3.0, 2.0]
    assert [r.answer for r in recs] == [3, 1, 5]
    assert [r.passage_id for r in recs] == ["2024_1-3", "2024_1-3", "2024_4"]
    assert [r.paragraph for r in recs] == [PARA_A, PARA_A, PARA_B]
    assert recs[1].extra == "<보기> 영희는 교사이다."
    assert recs[0].extra is None


def test_kice_import_points_and_shared_passages(store, tmp_path):
    result = datasets.import_file(store, kice_file(tmp_path / "2024.json"), "kice", "test", subject="국어")
    assert result.imported == 3
    assert store.rows("SELECT passage_id, text FROM passages ORDER BY passage_id") == [
        {"passage_id": "2024_1-3", "text": PARA_A}, {"passage_id": "2024_4", "text": PARA_B}]
    [listed] = datasets.list_datasets(store)
    assert {k: listed[k] for k in ("name", "split", "questions", "points", "subjects")} == {
        "name": "kice", "split": "test", "questions": 3, "points": 7, "subjects": {"국어": 3}}


def test_kice_bad_problem_is_located(store, tmp_path):
    data = json.loads(json.dumps(KICE))
    data[0]["problems"][1]["answer"] = "다섯"
    data[1]["problems"][0]["choices"] = ["하나"]
    path = kice_file(tmp_path / "bad.json", data)
    with pytest.raises(ImportFailed) as ei:
        datasets.import_file(store, path, "kice", "test")
    issues = [str(i) for i in ei.value.issues]
    assert issues == [
        "passage 1, question 2 (no. 2): answer '다섯' is not a choice number",
        "passage 2, question 1 (no. 3): 1 choices; a question needs 2 to 5; answer 5 is out of range 1–1",
    ]
    assert "2 bad row(s)" in ei.value.message
    assert n_datasets(store) == 0 and n_questions(store) == 0


def test_kice_malformed_json_reports_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n {"id": "1", "paragraph": "지문",\n  "problems": [ {"question": "문제" ]\n}]\n', encoding="utf-8")
    with pytest.raises(ImportFailed) as ei:
        parse_file(path)
    assert "broken.json: not valid JSON (line 3" in ei.value.message


# --- KMMLU -----------------------------------------------------------------------------------


def test_kmmlu_parse_and_import(store, tmp_path):
    path = kmmlu_file(tmp_path / "kmmlu.csv")
    parsed = parse_file(path)
    assert parsed.format == "kmmlu"
    assert [r.qid for r in parsed.records] == ["1", "2", "3"]
    assert [r.choices for r in parsed.records][1] == ["왕건", "이성계", "이방원", "세종"]
    assert all(len(r.choices) == 4 for r in parsed.records)
    assert [r.answer for r in parsed.records] == [1, 2, 3]
    assert [r.subject for r in parsed.records] == ["한국사", "한국사", "윤리와 사상"]
    datasets.import_file(store, path, "km", "train", subject="국어")  # the column wins over --subject
    [listed] = datasets.list_datasets(store)
    assert listed["subjects"] == {"한국사": 2, "윤리와 사상": 1}
    assert listed["points"] is None


def test_kmmlu_answer_out_of_range(store, tmp_path):
    path = write_csv(tmp_path / "k.csv", ["question", "A", "B", "C", "D", "answer", "Category"], [
        ["문제 하나", "가", "나", "다", "라", 4, "국어"],
        ["문제 둘", "가", "나", "다", "라", 5, "국어"],
        ["문제 셋", "가", "나", "다", "라", 0, "국어"],
    ])
    with pytest.raises(ImportFailed) as ei:
        datasets.import_file(store, path, "k", "train")
    assert [str(i) for i in ei.value.issues] == [
        "row 2: answer 5 is out of range 1–4", "row 3: answer 0 is out of range 1–4"]
    assert n_questions(store) == 0


# --- detection -------------------------------------------------------------------------------


def test_auto_detection(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert detect_format(good_boostcamp(tmp_path / "b.csv")) == "boostcamp"
    assert detect_format(kmmlu_file(tmp_path / "k.csv")) == "kmmlu"
    assert detect_format(kice_file(tmp_path / "k.json")) == "kice"
    assert detect_format(jsonl_file(tmp_path / "g.jsonl", [{"question": "q", "choices": ["a", "b"]}])) == "generic"
    assert detect_format(write_csv(tmp_path / "g.csv", ["question", "choices"], [["문제", "['가','나']"]])) == "generic"
    (tmp_path / "list.json").write_text('[{"question": "문제", "choices": ["가", "나"]}]', encoding="utf-8")
    assert detect_format(tmp_path / "list.json") == "generic"
    pq.write_table(pa.Table.from_pylist([{"question": "q", "choices": ["a", "b"]}]), tmp_path / "g.parquet")
    assert detect_format(tmp_path / "g.parquet") == "generic"
    (tmp_path / "folder").mkdir()
    assert detect_format(tmp_path / "folder") == "generic"
    (tmp_path / "notes.txt").write_text("문제", encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"notes\.txt: unknown file type \.txt"):
        detect_format(tmp_path / "notes.txt")


def test_explicit_format_overrides_detection(tmp_path):
    path = kmmlu_file(tmp_path / "k.csv")
    assert parse_file(path, "generic", {"choices": "A,B,C,D"}).format == "generic"
    with pytest.raises(ImportFailed, match=r"lacks column\(s\) id, paragraph, problems of the Boostcamp format"):
        parse_file(path, "boostcamp")
    with pytest.raises(ImportFailed, match="unknown format 'xml'"):
        parse_file(path, "xml")


# --- generic ---------------------------------------------------------------------------------


def test_generic_csv_with_choice_columns(store, tmp_path):
    path = write_csv(tmp_path / "my.csv", ["번호", "지문", "문항", "선지1", "선지2", "선지3", "선지4", "선지5", "정답", "배점", "과목"], [
        ["q1", PARA_A, "철수는 무엇을 하는가?", "운동", "공부", "잠", "식사", "독서", "①", "2", "국어"],
        ["q2", PARA_A, "글의 주제는?", "건강", "학업", "휴식", "여행", "", "2", "3", "국어"],
        ["q3", "", "3 + 4 = ?", "5", "6", "7", "8", "9", "3.0", "", "수학"],
    ])
    mapping = {"id": "번호", "paragraph": "지문", "question": "문항", "choices": "선지1,선지2,선지3,선지4,선지5",
               "answer": "정답", "points": "배점", "subject": "과목"}
    parsed = parse_file(path, mapping=mapping)
    assert parsed.format == "generic" and parsed.issues == []
    recs = parsed.records
    assert [r.qid for r in recs] == ["q1", "q2", "q3"]
    assert recs[0].choices == ["운동", "공부", "잠", "식사", "독서"]
    assert recs[1].choices == ["건강", "학업", "휴식", "여행"]  # 4-choice row in a 5-column file
    assert [r.answer for r in recs] == [1, 2, 3]
    assert [r.points for r in recs] == [2.0, 3.0, None]
    assert recs[0].passage_id == recs[1].passage_id and recs[2].passage_id is None
    datasets.import_file(store, path, "mine", "train", mapping=mapping)
    [listed] = datasets.list_datasets(store)
    assert (listed["questions"], listed["points"], listed["subjects"]) == (3, 5, {"국어": 2, "수학": 1})
    assert store.scalar("SELECT count(*) FROM passages") == 1


def test_generic_jsonl_native_fields(store, tmp_path):
    path = jsonl_file(tmp_path / "set.jsonl", [
        {"id": "a", "paragraph": PARA_B, "question": "(가)의 입장은?", "choices": ["가", "나", "다"], "answer": 2,
         "points": 2, "subject": "한국사", "question_plus": "<보기> 자료"},
        {"id": "b", "question": "옳은 것은?", "choices": ["참", "거짓"], "answer": None, "subject": "한국사"},
    ])
    result = datasets.import_file(store, path, "j", "seed")
    assert (result.format, result.imported) == ("generic", 2)
    rows = stored(store, "j")
    assert [(r["qid"], list(r["choices"]), r["answer"], r["points"], r["extra"]) for r in rows] == [
        ("a", ["가", "나", "다"], 2, 2.0, "<보기> 자료"), ("b", ["참", "거짓"], None, None, None)]
    assert rows[1]["passage_id"] is None


def test_generic_parquet(store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "set.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"stem": "다음 중 자연수는?", "options": ["-1", "0.5", "3", "π"], "label": 3, "category": "수학"},
        {"stem": "다음 중 모음은?", "options": ["ㄱ", "ㅏ", "ㄴ", "ㄷ", "ㄹ"], "label": 2, "category": "국어"},
    ]), path)
    parsed = parse_file(path)  # usual names: stem, options, label, category
    assert [r.question for r in parsed.records] == ["다음 중 자연수는?", "다음 중 모음은?"]
    assert [r.choices for r in parsed.records] == [["-1", "0.5", "3", "π"], ["ㄱ", "ㅏ", "ㄴ", "ㄷ", "ㄹ"]]
    assert [r.answer for r in parsed.records] == [3, 2]
    assert [r.qid for r in parsed.records] == ["1", "2"]
    datasets.import_file(store, path, "pq", "train", mapping={"question": "stem", "answer": "label"})
    assert [r["subject"] for r in stored(store, "pq")] == ["수학", "국어"]


def test_generic_hf_folder(store, tmp_path):
    from datasets import Dataset

    folder = tmp_path / "hf_set"
    Dataset.from_list([
        {"qid": "h1", "문제": "조선의 수도는?", "보기들": ["한양", "개경", "평양", "경주"], "정답": 1},
        {"qid": "h2", "문제": "고려의 수도는?", "보기들": ["한양", "개경", "평양", "경주"], "정답": 2},
    ]).save_to_disk(str(folder))
    mapping = {"question": "문제", "choices": "보기들", "answer": "정답"}
    result = datasets.import_file(store, folder, "hf", "train", mapping=mapping, subject="한국사")
    assert (result.format, result.imported) == ("generic", 2)
    rows = stored(store, "hf")
    assert [(r["qid"], r["question"], list(r["choices"]), r["answer"], r["subject"]) for r in rows] == [
        ("h1", "조선의 수도는?", ["한양", "개경", "평양", "경주"], 1, "한국사"),
        ("h2", "고려의 수도는?", ["한양", "개경", "평양", "경주"], 2, "한국사")]
    assert datasets.list_datasets(store)[0]["source"] == "hf_set"


def test_generic_mapping_errors(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["문항", "A", "B"], [["문제", "가", "나"]])
    with pytest.raises(ImportFailed) as ei:
        parse_file(path)
    assert ei.value.message == "no column for question, choices"
    assert "columns found: 문항, A, B" in ei.value.hint
    with pytest.raises(ImportFailed, match="mapped column\\(s\\) C not in the file"):
        parse_file(path, mapping={"question": "문항", "choices": "A,B,C"})
    with pytest.raises(ImportFailed, match="unknown mapping field\\(s\\) stem"):
        parse_file(path, mapping={"stem": "문항"})
    assert parse_file(path, mapping={"question": "문항", "choices": "A,B"}).records[0].choices == ["가", "나"]


# --- bad input -------------------------------------------------------------------------------

BAD_ROWS = [
    ["ok-1", PARA_A, problem("좋은 문제 하나"), ""],
    ["bad-2", PARA_A, "{'question': '닫히지 않은', 'choices': ['가', '나'", ""],
    ["bad-3", PARA_A, problem(choices=["하나뿐"], answer=1), ""],
    ["bad-4", PARA_A, problem(choices=["1", "2", "3", "4", "5", "6"], answer=1), ""],
    ["bad-5", PARA_A, problem(answer=6), ""],
    ["bad-6", PARA_A, problem(question="   "), ""],
    ["ok-1", PARA_B, problem("같은 아이디"), ""],
    ["bad-8", PARA_B, problem(choices=["가", "", "다", "라"]), ""],
    ["bad-9", PARA_B, "['question', 'choices']", ""],
    ["ok-10", PARA_B, problem("좋은 문제 둘", answer=3), ""],
]
BAD_ISSUES = [
    "row 2 (id bad-2): problems is not a readable Python-literal dict",
    "row 3 (id bad-3): 1 choices; a question needs 2 to 5",
    "row 4 (id bad-4): 6 choices; a question needs 2 to 5",
    "row 5 (id bad-5): answer 6 is out of range 1–5",
    "row 6 (id bad-6): question text is empty",
    "row 7 (id ok-1): duplicate id 'ok-1' (first at row 1 (id ok-1))",
    "row 8 (id bad-8): choice 2 is empty",
    "row 9 (id bad-9): problems must be a dict with 'question' and 'choices'",
]


def test_bad_rows_import_nothing(store, tmp_path):
    path = boostcamp_file(tmp_path / "bad.csv", BAD_ROWS)
    with pytest.raises(ImportFailed) as ei:
        datasets.import_file(store, path, "bad", "train")
    assert [str(i) for i in ei.value.issues] == BAD_ISSUES
    assert ei.value.message == "8 bad row(s) in bad.csv; nothing was imported"
    assert "--skip-bad" in ei.value.hint
    assert n_datasets(store) == 0 and n_questions(store) == 0
    assert store.scalar("SELECT count(*) FROM passages") == 0


def test_bad_rows_skip_bad(store, tmp_path):
    path = boostcamp_file(tmp_path / "bad.csv", BAD_ROWS)
    result = datasets.import_file(store, path, "bad", "train", skip_bad=True)
    assert result.imported == 2
    assert [str(i) for i in result.skipped] == BAD_ISSUES
    assert [i.where.split(" ")[1] for i in result.skipped] == ["2", "3", "4", "5", "6", "7", "8", "9"]
    assert [(r["qid"], r["question"]) for r in stored(store, "bad")] == [("ok-1", "좋은 문제 하나"), ("ok-10", "좋은 문제 둘")]
    assert store.scalar("SELECT n_questions FROM datasets WHERE name = 'bad'") == 2


def test_only_bad_rows_with_skip_bad_imports_nothing(store, tmp_path):
    path = boostcamp_file(tmp_path / "allbad.csv", BAD_ROWS[1:3])
    with pytest.raises(ImportFailed, match="no valid questions in allbad.csv"):
        datasets.import_file(store, path, "x", "train", skip_bad=True)
    assert n_datasets(store) == 0


def test_jsonl_bad_rows_name_lines(store, tmp_path):
    path = jsonl_file(tmp_path / "g.jsonl", [
        {"id": "1", "question": "문제", "choices": ["가", "나"], "answer": 1},
        {"id": "2", "question": "문제", "choices": "가나다", "answer": 1},
        {"id": "3", "question": "문제", "choices": ["가", "나"], "answer": "둘"},
        {"id": "4", "question": "문제", "choices": ["가", "나"], "answer": 2.5},
        {"id": "5", "question": "문제", "choices": ["가", "나"], "points": "많이"},
    ])
    with pytest.raises(ImportFailed) as ei:
        datasets.import_file(store, path, "g", "train")
    issues = [str(i) for i in ei.value.issues]
    assert issues[:3] == ["line 2: choices is not a list", "line 3: answer '둘' is not a choice number",
                          "line 4: answer 2.5 is not a whole number"]
    assert issues[3].startswith("line 5: ") and "많이" in issues[3]
    assert n_questions(store) == 0


def test_malformed_jsonl_line(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text('{"question": "문제", "choices": ["가", "나"]}\n{"question": "깨진 줄",\n', encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"g\.jsonl, line 2: not valid JSON"):
        parse_file(path)
    path.write_text('{"question": "문제", "choices": ["가", "나"]}\n["목록"]\n', encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"g\.jsonl, line 2: expected a JSON object"):
        parse_file(path)


def test_missing_columns(tmp_path):
    path = write_csv(tmp_path / "b.csv", ["id", "paragraph", "question_plus"], [["1", PARA_A, ""]])
    with pytest.raises(ImportFailed) as ei:
        parse_file(path, "boostcamp")
    assert ei.value.message == "b.csv lacks column(s) problems of the Boostcamp format"
    assert ei.value.hint == "columns found: id, paragraph, question_plus"
    path = write_csv(tmp_path / "k.csv", ["question", "A", "B", "C", "answer"], [["문제", "가", "나", "다", 1]])
    with pytest.raises(ImportFailed, match=r"k\.csv lacks column\(s\) D of the KMMLU format"):
        parse_file(path, "kmmlu")


def test_missing_columns_in_a_header_only_file(tmp_path):
    path = write_csv(tmp_path / "h.csv", ["id", "문제"], [])
    with pytest.raises(ImportFailed, match=r"h\.csv lacks column\(s\) paragraph, problems of the Boostcamp format"):
        parse_file(path, "boostcamp")
    with pytest.raises(ImportFailed, match=r"h\.csv lacks column\(s\) question, A, B, C, D, answer of the KMMLU"):
        parse_file(path, "kmmlu")


def test_csv_row_with_extra_cells(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("question,choices\n문제,\"['가','나']\"\n문제,가,나\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"b\.csv, row 2: 3 cells but the header has 2 columns"):
        parse_file(path)


def test_file_over_size_limit(store, tmp_path, monkeypatch):
    path = good_boostcamp(tmp_path / "big.csv")
    monkeypatch.setattr(base, "MAX_IMPORT_MB", 0.0001)  # ~105 bytes
    with pytest.raises(ImportFailed) as ei:
        datasets.import_file(store, path, "big", "train")
    assert "big.csv is" in ei.value.message and "over the import limit of 0.0001 MB" in ei.value.message
    assert "CSAT_MAX_IMPORT_MB" in ei.value.hint
    assert n_datasets(store) == 0


def test_cp949_file_decodes(store, tmp_path):
    path = kmmlu_file(tmp_path / "k949.csv", encoding="cp949")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    datasets.import_file(store, path, "k949", "train")
    rows = stored(store, "k949")
    assert rows[1]["question"] == "조선을 건국한 사람은?"
    assert list(rows[1]["choices"]) == ["왕건", "이성계", "이방원", "세종"]
    assert rows[2]["subject"] == "윤리와 사상"


def test_utf8_bom_csv(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + kmmlu_file(tmp_path / "k.csv").read_bytes())
    assert detect_format(path) == "kmmlu"
    assert parse_file(path).records[0].question == "대한민국의 수도는?"


@pytest.mark.parametrize("name, data", [
    ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06"),
    ("archive.jsonl", b"\x1f\x8b\x08\x00\xc3\xa5\xb1e\x02\xff\xcbH\xcd\xc9\xc9W(\xcf/\xcaI\x01\x00"),
    ("noise.csv", bytes([0x80, 0xFF, 0xFE, 0x81, 0x20, 0xC8]) * 50),
])
def test_binary_garbage_is_not_readable(store, tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImportFailed) as ei:
        datasets.import_file(store, path, "garbage", "train")
    assert ei.value.message.startswith(f"{name} is not readable text")
    assert n_datasets(store) == 0


@pytest.mark.parametrize("name, content", [("e.csv", ""), ("e.jsonl", "\n  \n"), ("e.json", ""), ("e.csv", "\ufeff")])
def test_empty_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFailed, match=rf"^{name} is empty$"):
        parse_file(path)


def test_header_only_csv_imports_nothing(store, tmp_path):
    path = write_csv(tmp_path / "h.csv", ["question", "A", "B", "C", "D", "answer"], [])
    with pytest.raises(ImportFailed, match="no valid questions in h.csv"):
        datasets.import_file(store, path, "h", "train")
    assert n_datasets(store) == 0


def test_missing_file(tmp_path):
    with pytest.raises(ImportFailed, match="does not exist"):
        parse_file(tmp_path / "없는파일.csv")


# --- store behaviour -------------------------------------------------------------------------


def test_same_file_twice_is_a_no_op(store, tmp_path):
    path = kice_file(tmp_path / "k.json")
    first = datasets.import_file(store, path, "kice", "test")
    second = datasets.import_file(store, path, "kice", "test")
    assert (first.already, first.imported) == (False, 3)
    assert (second.already, second.imported) == (True, 0)
    assert n_questions(store) == 3 and n_datasets(store) == 1
    assert store.scalar("SELECT count(*) FROM passages") == 2


def test_same_name_other_content(store, tmp_path):
    datasets.import_file(store, kice_file(tmp_path / "k.json"), "set", "test")
    other = kmmlu_file(tmp_path / "k.csv")
    with pytest.raises(ImportFailed, match="a dataset named 'set' already exists with other content"):
        datasets.import_file(store, other, "set", "test")
    assert [r["question"] for r in stored(store, "set")][0] == "윗글의 내용과 일치하지 않는 것은?"
    result = datasets.import_file(store, other, "set", "train", replace=True)
    assert result.imported == 3 and not result.already
    rows = stored(store, "set")
    assert [r["question"] for r in rows] == ["대한민국의 수도는?", "조선을 건국한 사람은?", "칸트의 윤리학에서 중시하는 것은?"]
    assert [r["qid"] for r in rows] == ["1", "2", "3"]  # same qids as the replaced set
    assert store.scalar("SELECT count(*) FROM passages WHERE dataset = 'set'") == 0
    assert store.rows("SELECT split, format FROM datasets") == [{"split": "train", "format": "kmmlu"}]


def test_failed_import_keeps_existing_dataset(store, tmp_path):
    datasets.import_file(store, kice_file(tmp_path / "k.json"), "keep", "test")
    datasets.import_file(store, kmmlu_file(tmp_path / "other.csv"), "other", "train")
    before = stored(store, "keep")
    bad = boostcamp_file(tmp_path / "bad.csv", BAD_ROWS)
    with pytest.raises(ImportFailed):
        datasets.import_file(store, bad, "keep", "test", replace=True)
    with pytest.raises(ImportFailed):
        datasets.import_file(store, tmp_path / "nothing.csv", "keep", "test", replace=True)
    assert stored(store, "keep") == before
    assert n_questions(store) == 6 and n_datasets(store) == 2


def test_failure_inside_the_transaction_rolls_back(store, tmp_path, monkeypatch):
    datasets.import_file(store, kice_file(tmp_path / "k.json"), "keep", "test")
    before = stored(store, "keep")
    real = datasets._bulk_insert

    def failing(store_, table, columns):
        if table == "questions":  # after the dataset row and its passages went in
            raise RuntimeError("disk full")
        return real(store_, table, columns)

    monkeypatch.setattr(datasets, "_bulk_insert", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        datasets.import_file(store, kmmlu_file(tmp_path / "k.csv"), "keep", "train", replace=True)
    assert stored(store, "keep") == before
    assert store.rows("SELECT name, split, format FROM datasets") == [{"name": "keep", "split": "test", "format": "kice"}]
    assert store.scalar("SELECT count(*) FROM passages") == 2


def test_nfd_korean_is_stored_as_nfc(store, tmp_path):
    def nfd(s: str) -> str:
        out = unicodedata.normalize("NFD", s)
        assert out != s
        return out

    path = jsonl_file(tmp_path / "nfd.jsonl", [{
        "id": nfd("문항1"), "paragraph": nfd(PARA_A), "question": nfd("한국어 문제"),
        "choices": [nfd("가나"), nfd("다라")], "answer": 1, "subject": nfd("국어"), "question_plus": nfd("<보기> 한글"),
    }])
    datasets.import_file(store, path, nfd("한글셋"), "train")
    [q] = datasets.questions(store, "한글셋")
    assert (q["qid"], q["question"], list(q["choices"]), q["subject"], q["extra"], q["paragraph"]) == (
        "문항1", "한국어 문제", ["가나", "다라"], "국어", "<보기> 한글", PARA_A)
    assert datasets.list_datasets(store)[0]["name"] == "한글셋"


def test_problems_code_is_never_executed(store, tmp_path):
    pwned = tmp_path / "PWNED"
    payload = f"__import__('os').system('touch {pwned}')"
    path = boostcamp_file(tmp_path / "evil.csv", [
        ["ok-1", PARA_A, problem("정상 문제"), ""],
        ["evil-2", PARA_A, payload, ""],
        ["evil-3", PARA_A, "{'question': " + payload + ", 'choices': ['가', '나']}", ""],
    ])
    with pytest.raises(ImportFailed) as ei:
        datasets.import_file(store, path, "evil", "train")
    assert [str(i) for i in ei.value.issues] == [
        "row 2 (id evil-2): problems is not a readable Python-literal dict",
        "row 3 (id evil-3): problems is not a readable Python-literal dict",
    ]
    result = datasets.import_file(store, path, "evil", "train", skip_bad=True)
    assert result.imported == 1 and [i.where for i in result.skipped] == ["row 2 (id evil-2)", "row 3 (id evil-3)"]
    assert not pwned.exists()


# --- small parsers ---------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (3, 3), ("3", 3), ("3.0", 3), (2.0, 2), ("③", 3), (" 1 ", 1), (None, None), ("", None), (float("nan"), None)])
def test_parse_answer(value, expected):
    assert parse_answer(value) == expected


@pytest.mark.parametrize("value", ["셋", 2.5, "2.5", True])
def test_parse_answer_rejects(value):
    with pytest.raises(ValueError):
        parse_answer(value)


def test_parse_choices():
    assert parse_choices('["가", "나"]') == ["가", "나"]
    assert parse_choices("['가', '나', '다']") == ["가", "나", "다"]
    assert parse_choices(("가", " 나 ")) == ["가", "나"]
    with pytest.raises(ValueError, match="choices is not a list"):
        parse_choices("__import__('os')")
    with pytest.raises(ValueError, match="choices is not a list"):
        parse_choices(3)
