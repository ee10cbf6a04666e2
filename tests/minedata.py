"""The mining test pool and scripted servers (test data), shared by test_mining and test_pages_mine.

The pool is six questions on two passages; every prompt carries its question's tag "[qN]", so the
scripted servers answer per question (and per sample, by arrival order of identical requests).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path

from core import models
from core.steps.data import datasets
from core.store import Store
from tests.loopback import Loopback, Reply

C5 = ["가", "나", "다", "라", "마"]
C4 = ["ㄱ", "ㄴ", "ㄷ", "ㄹ"]


def _q(n: int, answer: int | None, choices: list[str] = C5, subject: str | None = None) -> dict:
    q = {"question": f"[q{n}] 윗글에 대한 설명으로 적절한 것은?", "choices": choices, "score": 2}
    if answer is not None:
        q["answer"] = answer
    if subject:
        q["subject"] = subject
    return q


POOL = [
    {"id": "p1", "subject": "국어", "paragraph": "첫째 지문이다.", "problems": [_q(1, 1), _q(2, 3), _q(3, 5)]},
    {"id": "p2", "subject": "한국사", "paragraph": "둘째 지문이다.",
     "problems": [_q(4, 2, C4), _q(5, 4, C4), _q(6, None, C4)]},
]
GOLD = {1: 1, 2: 3, 3: 5, 4: 2, 5: 4, 6: None}
UNPARSED = "풀이를 끝내지 못했다."

# K = 1. Teacher: wrong on q3, unparseable on q5. Student: wrong on q1, q3, q4.
TEACHER = {1: 1, 2: 3, 3: 2, 4: 2, 5: None, 6: 1}
STUDENT = {1: 4, 2: 3, 3: 1, 4: 3, 5: 4, 6: 2}
OUTCOME = {"1": "hard_negative", "2": "both_correct", "3": "both_wrong", "4": "hard_negative",
           "5": "student_only", "6": "no_answer"}

TAG = re.compile(r"\[q(\d+)\]")


def solve_text(who: str, q: int, answer: int | None) -> str:
    if answer is None:
        return UNPARSED
    return f"{who} 풀이 q{q}: 선지를 하나씩 검토했다.\n{{\"Answer\":\"{answer}\"}}"


class Script:
    """A server script: solve replies per question tag (one answer, or a list taken in arrival order
    for K samples), judge verdicts and classifier labels per tag; `hook(n)` runs on every request."""

    def __init__(self, who: str, answers: dict[int, int | None | list[int | None]] | None = None,
                 verdicts: dict[int, str] | None = None, labels: dict[int, str] | None = None, hook=None):
        self.who, self.answers, self.verdicts, self.labels, self.hook = who, answers or {}, verdicts, labels, hook
        self.seen: Counter = Counter()
        self.kinds: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, n: int, body: dict) -> Reply:
        if self.hook:
            self.hook(n)
        text = json.dumps(body, ensure_ascii=False)
        q = int(TAG.search(text).group(1))
        if "preferred" in text:
            self.kinds["judge"] += 1
            return Reply(text=self.verdicts[q])
        if "과목 목록" in text:
            self.kinds["classify"] += 1
            return Reply(text=self.labels[q])
        with self.lock:
            k = self.seen[q]
            self.seen[q] += 1
            self.kinds["solve"] += 1
        a = self.answers[q]
        if isinstance(a, list):
            a = a[k % len(a)]
        return Reply(text=solve_text(self.who, q, a))


def pool(store: Store, tmp_path: Path, data: list = POOL, name: str = "kice") -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    datasets.import_file(store, path, name, "train")
    return name


# The loopback server's listen backlog is small: a few requests in flight, quick retries of refused connects.
FAST = {"concurrency": 4, "max_retries": 3, "retry_base_s": 0.01}


def register(store: Store, teacher: Loopback, student: Loopback, judge: Loopback | None = None,
             teacher_params: dict | None = None, student_params: dict | None = None) -> None:
    models.add_model(store, "teacher", "gemini", "gemini-2.5-flash", base_url=teacher.base_url,
                     params=FAST | (teacher_params or {}))
    models.add_model(store, "student", "openai", "qwen3-14b", base_url=student.base_url,
                     params=FAST | (student_params or {}))
    if judge:
        models.add_model(store, "judge", "openai", "judge-model", base_url=judge.base_url, params=FAST)


def gen(store: Store, key: str | None) -> dict | None:
    rows = store.rows("SELECT * FROM generations WHERE cache_key = ?", [key])
    return rows[0] if rows else None


def by_qid(rows: list[dict]) -> dict[str, dict]:
    return {r["qid"]: r for r in rows}


VERDICTS = {
    1: '{"preferred": "teacher", "reason": "교사 풀이가 근거를 더 정확히 든다."}',
    2: '{"preferred": "student", "reason": "학생 풀이가 더 간결하다."}',
    3: '{"preferred": "tie", "reason": "두 풀이의 질이 같다."}',
    4: "두 풀이 모두 훌륭하여 판단하기 어렵다.",
    5: '검토 결과는 다음과 같다.\n```json\n{"preferred": "teacher", "reason": "선지 검토가 빠짐없다."}\n```',
}
