"""A small inline question set (test data): n questions with gold answers cycling 1..5."""

from __future__ import annotations

import json
from pathlib import Path

from core.steps.data import datasets


def import_mini(store, tmp_path: Path, n: int = 6, name: str = "mini", answers: bool = True) -> list[str]:
    path = tmp_path / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({
                "id": f"q{i + 1}", "paragraph": f"지문 {i + 1}: 법률행위는 의사표시를 요소로 한다.",
                "question": f"윗글의 내용과 일치하지 않는 것은? ({i + 1})",
                "choices": ["가", "나", "다", "라", "마"], "answer": (i % 5) + 1 if answers else None,
                "points": 2, "subject": "국어",
            }, ensure_ascii=False) + "\n")
    datasets.import_file(store, path, name, "test", fmt="generic")
    return [f"q{i + 1}" for i in range(n)]
