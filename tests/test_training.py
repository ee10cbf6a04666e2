"""Training: real ORPO runs of a tiny random Qwen3 on CPU through the launcher (a real worker process).

Covered: pre-flight with over-long pairs and missing target modules, prompt rendering equal to the local
provider's, setting typos, a busy GPU refused, a NaN loss named, the worker never loading the store, and
a run started from the CLI that a second CLI process re-attaches to (--wait --json): metrics ingested,
the adapter registered and answering through the local provider, exported (adapter and merged).
Cancel, SIGKILL + resume and Ctrl-C: tests/test_training_lifecycle.py.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from trainhelp import (  # noqa: F401 (fixtures)
    DEADLINE_S,
    ROOT,
    TINY,
    add_tiny,
    cli,
    config,
    kill_leftover_workers,
    make_set,
    no_worker_left_behind,
    pair,
)

from core import engine, models
from core.engine import Request
from core.errors import CoreError
from core.providers.base import GenParams
from core.providers.local import LocalProvider
from core.steps.train import data, files, ingest, launcher, preflight, record
from core.store import Store

# -- pre-flight and prompts (no worker) ---------------------------------------------------------------

def test_preflight_drops_or_truncates_over_long_pairs_visibly(tiny):
    long_user = "윗글의 내용과 일치하지 않는 것은? " * 60
    long_reply = "지문과 <보기>에 근거하여 판단한다. " * 40 + '{"Answer":"3"}'
    make_set(tiny, "long", [pair(0), pair(1, user=long_user), pair(2, chosen=long_reply), pair(3, chosen="같다", rejected="같다")])
    pf = preflight.preflight(tiny, config(set_name="long"))
    assert pf["pairs"] == 4 and pf["kept"] == 2
    reasons = {d["idx"]: d["reason"] for d in pf["dropped"]}
    assert set(reasons) == {1, 3} and "max_prompt_length 160" in reasons[1] and "identical" in reasons[3]
    assert [t["idx"] for t in pf["truncated"]] == [2] and "chosen" in pf["truncated"][0]["reason"]
    assert pf["tokens"]["prompt"]["max"] > 160 and pf["backend"] == "cpu" and pf["precision"] == "fp32"
    assert pf["estimate"]["steps"] >= 1 and pf["disk_free_gb"] > 0 and any("dropped" in w for w in pf["warnings"])

    kept = data.prepare(tiny, config(set_name="long", long_prompts="truncate"))
    assert [r["idx"] for r in kept["rows"]] == [0, 1, 2]
    tok = data.load_tokenizer(data.resolve_base(tiny, "tiny").folder)
    for r in kept["rows"]:
        n_prompt = len(tok(r["prompt"], add_special_tokens=False)["input_ids"])
        n_chosen = len(tok(r["chosen"], add_special_tokens=False)["input_ids"]) + 1
        assert n_prompt <= 160 + 1 and n_prompt + n_chosen <= 256 + 1
    cut = next(r for r in kept["rows"] if r["idx"] == 1)
    assert cut["prompt"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # the end (generation prompt) kept

    with pytest.raises(CoreError, match=r"target_modules \['foo_proj'\] are not in tiny .*gate_proj"):
        launcher.start(tiny, config(target_modules=["gate_proj", "foo_proj"]))
    assert tiny.scalar("SELECT count(*) FROM training_runs") == 0

    with pytest.raises(CoreError, match="no pair"):
        make_set(tiny, "hopeless", [pair(0, user=long_user)])
        launcher.start(tiny, config(set_name="hopeless"))


def test_prompt_is_rendered_as_the_local_provider_renders_it(tiny, tiny_qwen, tmp_path):
    tok = data.load_tokenizer(tiny_qwen)
    msgs = data.messages_of(json.dumps(pair(0)["prompt"], ensure_ascii=False))
    text, kind = data.render_prompt(tok, msgs, False, None)
    assert kind == "chat" and text == LocalProvider.prompt(None, tok, msgs, GenParams(thinking=False))[0]
    assert data.messages_of("그냥 문자열 프롬프트") == [{"role": "user", "content": "그냥 문자열 프롬프트"}]
    # A base model without a chat template (as gemma3-270m-local): plain text + the model's prefill.
    tok.chat_template = None
    plain, kind = data.render_prompt(tok, msgs, None, "정답: ")
    assert kind == "plain" and plain == "\n\n".join(m["content"] for m in msgs) + "\n\n정답: "
    folder = tmp_path / "plain-base"
    import shutil

    shutil.copytree(tiny_qwen, folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    models.add_model(tiny, "plainbase", "local", str(folder), params={"prefill": "정답: "})
    make_set(tiny, "pre", [pair(0, chosen='정답: ③번. {"Answer":"3"}')])
    prepared = data.prepare(tiny, config(set_name="pre", base_model="plainbase"))
    assert prepared["template"]["kind"] == "plain" and prepared["template"]["prefill"] == "정답: "
    row = prepared["rows"][0]
    assert row["prompt"].endswith("\n\n정답: ") and row["chosen"] == '③번. {"Answer":"3"}'  # prefill not doubled


def test_a_typo_in_a_setting_fails_before_anything_starts(tiny):
    tiny.close()
    db = Path(tiny.path)
    r = cli(db, "train", "start", "--set", "s", "--base", "tiny", "--param", "max_stepz=2")
    assert r.returncode == 1 and "unknown training setting 'max_stepz'" in r.stderr and "max_steps" in r.stderr
    r = cli(db, "train", "start", "--set", "s", "--base", "tiny", "--param", "beta=-1")
    assert r.returncode == 1 and "beta" in r.stderr
    r = cli(db, "train", "preflight", "--set", "s", "--base", "tiny", "--preset", "tiny CPU trial",
            "--param", "target_modules=q_proj,v_proj", "--json")
    assert r.returncode == 0, r.stderr
    pf = json.loads(r.stdout)
    assert pf["kept"] == 6 and pf["backend"] == "cpu" and pf["tokens"]["limits"]["max_length"] == 768  # the preset
    assert pf["train_pairs"] == 5 and pf["heldout_pairs"] == 1
    assert pf["estimate"]["steps"] == 2 and pf["template"]["kind"] == "chat" and pf["template"]["thinking"] is False
    s = Store(db)
    assert s.scalar("SELECT count(*) FROM training_runs") == 0 and s.scalar("SELECT count(*) FROM runs") == 0
    s.close()


def test_busy_gpu_refuses_a_second_run(tiny, tmp_path):
    from core.steps.train import liveness

    fd = liveness.acquire(tmp_path)  # what a live worker holds
    tiny.execute("INSERT INTO training_runs (id, set_name, base_model, state, run_dir, pid, config, "
                 "config_hash) VALUES ('train-live', 's', 'tiny', 'running', ?, ?, '{}', 'x')",
                 [str(tmp_path), psutil.Process().pid])
    assert record.live_runs(tiny) == ["train-live"]
    with pytest.raises(CoreError, match="already training on the GPU"):
        launcher._refuse_if_busy(tiny, "trl")
    launcher._refuse_if_busy(tiny, "cpu")  # CPU runs may share the machine
    os.close(fd)
    assert record.live_runs(tiny) == []


def test_nan_loss_stops_the_run_and_names_the_pairs(tmp_path):
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from core.steps.train import worker

    status = worker.Status(tmp_path)
    ref = {"nan": None, "start_step": 0, "trainer": SimpleNamespace(window=[4, 1, 4])}
    cb = worker.make_callback(tmp_path, status, {1: 10, 4: 20}, ref)
    state, control = TrainerState(global_step=3, max_steps=10, epoch=0.3), TrainerControl(should_save=True)
    cb.on_log(None, state, control, logs={"loss": float("nan"), "nll_loss": 1.0})
    assert control.should_training_stop and not control.should_save
    assert ref["nan"] == {"step": 3, "pairs": [1, 4]}
    line = json.loads((tmp_path / files.METRICS).read_text())
    assert line["step"] == 3 and math.isnan(line["loss"]) and line["pairs"] == [4, 1, 4]


# -- real worker runs -----------------------------------------------------------------------------------

def test_cli_run_reattached_by_another_process_registers_a_working_adapter(tiny):
    tiny.close()
    db = Path(tiny.path)
    args = ["train", "start", "--set", "s", "--base", "tiny", "--param", "max_steps=3", "--param", "backend=cpu",
            *[x for k, v in TINY.items() if k != "backend" for x in ("--param", f"{k}={v}")]]
    first = cli(db, *args)  # starts the worker and exits: the run must outlive this process
    assert first.returncode == 0, first.stderr
    assert "Started training run" in first.stderr
    second = cli(db, *args, "--wait", "--json")  # same settings = same run: attaches to the live worker
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert set(out) == {"run", "state", "backend", "steps", "epochs", "seconds", "final", "adapter_model", "heldout"}
    # 1 of the 6 pairs held out, scored with the adapter off (base) and on (tuned, after step 3)
    assert out["heldout"]["pairs"] == 1 and set(out["heldout"]["base"]) == set(out["heldout"]["tuned"]) == {
        "accuracy", "margin"}
    assert out["heldout"]["base"]["accuracy"] in (0.0, 1.0) and math.isfinite(out["heldout"]["tuned"]["margin"])
    assert out["state"] == "done" and out["backend"] == "cpu" and out["steps"] == 3
    assert out["epochs"] > 0 and out["seconds"] > 0 and math.isfinite(out["final"]["loss"])
    assert {"nll_loss", "log_odds_ratio", "rewards_accuracies", "rewards_margins"} <= set(out["final"])
    assert out["adapter_model"] == f"tiny-orpo-{out['run'].removeprefix('train-')}"

    listed = json.loads(cli(db, "train", "list", "--json").stdout)
    assert [r["run"] for r in listed] == [out["run"]] and listed[0]["state"] == "done"
    shown = json.loads(cli(db, "train", "show", out["run"], "--json").stdout)
    assert [m["step"] for m in shown["metrics"]] == [1, 2, 3]
    assert all(m["loss"] is not None and m["learning_rate"] is not None for m in shown["metrics"])
    assert shown["config"]["max_steps"] == 3 and any("done: 3 steps" in ln for ln in shown["log_tail"])

    store = Store(db)
    try:
        assert store.scalar("SELECT count(*) FROM training_metrics WHERE run_id = ?", [out["run"]]) == 3
        assert store.scalar("SELECT state FROM runs WHERE id = ?", [out["run"]]) == "done"
        tuned = models.get_model(store, out["adapter_model"])
        assert tuned.provider == "local" and Path(tuned.adapter, "adapter_model.safetensors").is_file()
        assert tuned.params.thinking is False
        reply = engine.run(store, tuned, [Request([{"role": "user", "content": "다음 수능 문제를 풀어 주세요."}], "t",
                                                  qid="1", dataset="d", n_choices=5)]).rows[0]
        assert reply["error"] is None and reply["output_tokens"] > 0
        # Evaluate's check: the same thinking setting is fine, the other one is flagged.
        assert ingest.template_mismatch(store, out["adapter_model"]) is None
        assert "thinking on" in ingest.template_mismatch(store, out["adapter_model"], thinking=True)
        assert ingest.template_mismatch(store, "tiny") is None
        exported = Path(store.path).parent / "exported"
        from core.steps.train import export

        export.export(store, out["run"], exported)
        assert (exported / "adapter_config.json").is_file()
        merged = Path(store.path).parent / "merged"
        assert export.export(store, out["run"], merged, merged=True)["kind"] == "merged"
        assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()
        with pytest.raises(CoreError, match="not empty"):
            export.export(store, out["run"], merged)
    finally:
        store.close()


def test_the_worker_never_loads_the_store():
    code = ("import sys, core.steps.train.worker as w; w.make_trainer_class(); "
            "print(sorted(m for m in ('duckdb', 'core.store', 'streamlit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_S,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
