"""The evaluation test sets and prediction files (test data), shared by test_evaluation and
test_pages_evaluate: every expected number in those tests is computed by hand from these."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from core.steps.data import datasets
from core.store import Store

C5 = ["가", "나", "다", "라", "마"]
C4 = ["ㄱ", "ㄴ", "ㄷ", "ㄹ"]


def _q(n: int, answer: int | None, score: float, choices: list[str] = C5) -> dict:
    return {"question": f"[q{n}] 윗글에 대한 설명으로 적절한 것은?", "choices": choices, "answer": answer, "score": score}


# KICE JSON: 8 questions on 4 passages (clusters), 5-choice 국어 and 4-choice 한국사, 18 points in all.
KICE = [
    {"id": "p1", "subject": "국어", "paragraph": "첫째 지문이다.", "problems": [_q(1, 1, 2), _q(2, 3, 3), _q(3, 5, 2)]},
    {"id": "p2", "subject": "국어", "paragraph": "둘째 지문이다.", "problems": [_q(4, 2, 2), _q(5, 2, 2)]},
    {"id": "p3", "subject": "한국사", "paragraph": "셋째 지문이다.", "problems": [_q(6, 4, 3, C4), _q(7, 1, 2, C4)]},
    {"id": "p4", "subject": "한국사", "paragraph": "넷째 지문이다.", "problems": [_q(8, 3, 2, C4)]},
]
GOLD = {"1": 1, "2": 3, "3": 5, "4": 2, "5": 2, "6": 4, "7": 1, "8": 3}
PASSAGE = {"1": "p1", "2": "p1", "3": "p1", "4": "p2", "5": "p2", "6": "p3", "7": "p3", "8": "p4"}
# A: q2 blank, q8 missing from the file; right on q5, q6 only. B: wrong on q6 only.
PRED_A = {"1": 2, "2": None, "3": 4, "4": 1, "5": 2, "6": 4, "7": 2}
PRED_B = {"1": 1, "2": 3, "3": 5, "4": 2, "5": 2, "6": 1, "7": 1, "8": 3}


def write_csv(path: Path, rows: list[list], header: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header or ["id", "answer"])
        w.writerows(rows)
    return path


def pred_csv(tmp_path: Path, name: str, answers: dict[str, int | None]) -> Path:
    return write_csv(tmp_path / f"{name}.csv", [[k, "" if v is None else v] for k, v in answers.items()])


def kice_set(store: Store, tmp_path: Path, name: str = "kice") -> None:
    path = tmp_path / "kice.json"
    path.write_text(json.dumps(KICE, ensure_ascii=False), encoding="utf-8")
    datasets.import_file(store, path, name, "test")


def boostcamp_file(tmp_path: Path, rows: list[tuple], name: str) -> Path:
    """rows: (id, paragraph, choices, answer or None, subject); no points column."""
    out = []
    for qid, para, choices, answer, subject in rows:
        problem = {"question": f"{qid} 물음", "choices": choices} | ({"answer": answer} if answer is not None else {})
        out.append([qid, para, repr(problem), "", subject])
    return write_csv(tmp_path / name, out, ["id", "paragraph", "problems", "question_plus", "subject"])


# Boostcamp CSV, no points: b1, b2 share passage A; b5 has no gold answer (not scored). 3 passages scored.


UNLABELLED = [("u1", "지문 가", C5, None, "국어"), ("u2", "지문 가", C5, None, "국어"), ("u3", "지문 나", C4, None, "한국사"),
              ("u4", "지문 나", C4, None, "한국사"), ("u5", "지문 다", C5, None, "국어")]
