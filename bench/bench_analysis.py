"""Analysis benchmark: answer extraction over long replies and the passage-clustered bootstrap.

    .venv/bin/python bench/bench_analysis.py

Timings moved here from tests/test_answers.py and tests/test_stats.py (tests assert no duration).
Each figure is printed beside the budget the old tests held it to, measured in this run on this
machine. A benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import numpy as np  # noqa: E402

from core.answers import extract_answer  # noqa: E402
from core.stats import paired_bootstrap_ci  # noqa: E402

ANALYSIS = ("발문을 보면 \"윗글의 내용과 일치하지 않는 것은?\"이므로 옳지 않은 선지를 골라야 한다.\n\n선지 분석:\n"
            "①은 1문단에서 '법률행위는 의사표시를 요소로 한다'고 했으므로 옳다.\n②는 2문단의 내용과 일치한다.\n"
            "③은 3문단에서 ㉠이 ⓑ에 영향을 준다고 했으므로 틀리다.\n④는 (가)와 (나)를 비교한 4문단과 일치하므로 옳다.\n"
            "⑤ 역시 5문단에 근거가 있으므로 적절하다.")


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    texts = [ANALYSIS * 6 + f'\n{{"Answer":"{i % 5 + 1}"}}' for i in range(1000)]
    texts += [ANALYSIS * 6 + f"\n따라서 정답은 {i % 5 + 1}번이다." for i in range(1000)]
    t = best_of(lambda: [extract_answer(x) for x in texts])
    print(f"extract_answer: 2,000 long replies in {t:.3f} s ({len(texts) / t:,.0f}/s; old test budget 2.0 s)")

    rng = np.random.default_rng(4)
    a, b = (rng.random(500) < 0.5).tolist(), (rng.random(500) < 0.65).tolist()
    clusters = [f"p{i // 4}" for i in range(500)]
    t = best_of(lambda: paired_bootstrap_ci(a, b, n_resamples=10_000))
    tc = best_of(lambda: paired_bootstrap_ci(a, b, clusters, n_resamples=10_000))
    print(f"paired bootstrap, 500 questions × 10,000 resamples: {t:.3f} s unclustered, {tc:.3f} s over "
          f"125 passages (old test budget 1.0 s)")


if __name__ == "__main__":
    main()
