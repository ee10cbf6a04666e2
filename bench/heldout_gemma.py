"""The held-out check on a real model: 30 pairs whose chosen and rejected answers each follow one
consistent style, 20 % held out, 10 ORPO steps of the built-in Gemma 3 270M on CPU (well over a
minute). Prints the run's held-out margin and accuracy, base vs tuned, and whether `train show` ever
said failed while the run was alive (it polls it every few seconds in another process).

    python bench/heldout_gemma.py [WORKDIR]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHOSEN = ("지문의 근거를 차례로 확인한다. 첫째, 선택지를 본문과 대조한다. 둘째, 틀린 진술을 고른다. "
          "따라서 정답은 {n}번이다.\n{{\"Answer\":\"{n}\"}}")
REJECTED = "음 잘 모르겠지만 그냥 찍으면 {m}번 같다 ㅎㅎ 아마도?? Answer: {m}"
SUBJECTS = ["국어", "생활과 윤리", "윤리와 사상", "사회·문화", "정치와 법"]


def core(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "--db", str(db), *args], cwd=ROOT, capture_output=True,
                          text=True)


def main() -> int:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="heldout-gemma-"))
    work.mkdir(parents=True, exist_ok=True)
    db, pairs = work / "csat.duckdb", work / "styled.jsonl"
    with open(pairs, "w", encoding="utf-8") as fh:
        for i in range(30):
            fh.write(json.dumps({"prompt": f"다음 {SUBJECTS[i % 5]} 문제를 풀어 주세요. 문제 {i + 1}: 윗글에 대한 설명으로 "
                                           "적절하지 않은 것은?",
                                 "chosen": CHOSEN.format(n=i % 5 + 1), "rejected": REJECTED.format(m=(i + 2) % 5 + 1),
                                 "subject": SUBJECTS[i % 5]}, ensure_ascii=False) + "\n")
    r = core(db, "pairs", "import", str(pairs), "--name", "styled-30", "--system", "solve")
    assert r.returncode == 0, r.stderr
    args = ["train", "start", "--set", "styled-30", "--base", "gemma3-270m-local", "--preset", "tiny CPU trial",
            "--max-steps", "10", "--heldout-fraction", "0.2", "--learning-rate", "2e-4", "--beta", "0.5",
            "--max-length", "384", "--json"]
    t0 = time.monotonic()
    started = core(db, *args)
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run"]
    states = []
    while True:  # another process, as a user running `train show` would
        shown = core(db, "train", "show", run_id, "--json")
        if shown.returncode == 0:
            info = json.loads(shown.stdout)
            states.append(info["state"])
            if info["state"] != "running":
                break
        time.sleep(3)
    seconds = time.monotonic() - t0
    h = info["heldout"] or {}
    print(json.dumps({"run": run_id, "state": info["state"], "seconds": round(seconds), "steps": info["steps"],
                      "polls": len(states), "ever_failed_while_running": "failed" in states[:-1],
                      "heldout": h, "message": info.get("message")}, ensure_ascii=False, indent=1))
    ok = info["state"] == "done" and h.get("tuned") and h["tuned"]["margin"] > h["base"]["margin"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
