"""AppTest of the Train page: empty state, then preset → pre-flight → Start → a real worker run → live curves."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest
from trainhelp import (
    TINY,
    make_set,
    no_worker_left_behind,  # noqa: F401 (fixtures)
    pair,
)

from core import models
from core.steps.train import TrainConfig, ingest, launcher, record
from core.store import Store
from tests.pagetest import clear_cached_store, fresh_page_store, open_page, shown  # noqa: F401


def select(at: AppTest, label: str):
    return next(s for s in at.selectbox if s.label.lower() == label.lower())  # form labels may be capitalised


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_empty_state_says_what_is_needed(db_env):
    at = open_page("pages/train.py")
    assert any("Needs first" in i.value for i in at.info)
    assert any("No training run yet" in i.value for i in at.info)


def test_preset_preflight_start_live_curves_and_overlay(db_env, tiny_qwen):
    seed = Store(db_env)
    models.add_model(seed, "tiny", "local", tiny_qwen, params={"thinking": False})
    long_user = "윗글의 내용과 일치하지 않는 것은? " * 120
    make_set(seed, "s", [pair(i) for i in range(4)] + [pair(4, user=long_user)])
    seed.close()
    clear_cached_store()

    at = open_page("pages/train.py")
    select(at, "Preset").select("tiny CPU trial").run()
    assert next(n for n in at.number_input if n.label.lower() == "max steps").value == 2  # the preset filled the form
    select(at, "base model").select("tiny")  # a form: the value is sent with the submit
    button(at, "Check (pre-flight)").click().run()
    assert not at.exception, at.exception
    # The preset fits the product's own pairs: the over-long prompt is cut to its end, not dropped.
    assert any(m.label == "pairs kept" and m.value == "5 / 5" for m in at.metric)
    assert any(m.label == "train / held out" and m.value == "4 / 1" for m in at.metric)
    assert any("truncated" in w.value for w in at.warning)
    assert any("kept its end" in str(row) for row in at.dataframe[0].value.to_dict("records"))
    button(at, "Start training").click().run()
    assert not at.exception, at.exception
    assert any("Started training run" in s.value for s in at.success)

    from pages._ui import _open_store

    store = _open_store(str(db_env))  # the page's own store (this process owns the file)
    run_id = ingest.list_runs(store)[0]["run"]
    assert ingest.wait(store, run_id, poll_s=0.2)["state"] == "done"
    # A second run (another seed) for the overlay chart.
    other, _ = launcher.start(store, TrainConfig(set_name="s", base_model="tiny", **(TINY | {"seed": 1, "max_steps": 2})))
    assert ingest.wait(store, other, poll_s=0.2)["state"] == "done"

    at.run()
    assert not at.exception, at.exception
    select(at, "Run").select(run_id).run()
    done = ingest.list_runs(store)
    tuned = next(r["adapter_model"] for r in done if r["run"] == run_id)
    assert tuned.startswith("tiny-orpo-")
    assert any(tuned in shown(s.value) and "registered" in s.value for s in at.success)
    assert any("made by train run " + run_id in shown(c.value) for c in at.caption)
    table = at.dataframe[0].value
    assert "None" not in table.astype(str).to_string() and "held-out tuned (margin · acc)" in table.columns
    # the tuned model's name was cut off at the right of a table wider than the page: third, at its own width
    assert list(table.columns)[:3] == ["run", "state", "tuned model"]
    import json as _json
    assert _json.loads(at.dataframe[0].proto.columns)["tuned model"]["width"] >= 150
    held = next(d.value for d in at.dataframe if "preference accuracy" in d.value.columns)
    assert list(held["model"]) == ["base (adapter off)", "tuned"] and list(held["pairs"]) == [1, 1]
    assert any("badge[" in m.value and "grad norm" in m.value for m in at.markdown)  # health signals by the curves
    charts = at.get("plotly_chart")
    # held-out by step (before and after) and the run's four key curves; the comparison waits to be asked
    assert len(charts) == 2
    import json

    held_fig = json.loads(charts.pop(0).proto.spec)
    assert [t["x"] for t in held_fig["data"]][0] == [0, 2] and held_fig["layout"]["xaxis"]["tickformat"] == "d"
    curves = json.loads(charts[0].proto.spec)
    assert {t.get("name") for t in curves["data"]} == {"loss", "chosen", "rejected", "margin", "accuracy"}
    next(t for t in at.toggle if t.label == "All curves").set_value(True).run()
    curves = json.loads(at.get("plotly_chart")[1].proto.spec)
    names = {t.get("name") for t in curves["data"]}
    assert {"loss", "nll_loss", "log_odds_ratio", "chosen", "rejected", "margin", "accuracy", "lr", "grad_norm"} <= names
    next(m for m in at.multiselect if m.label == "Runs").set_value([run_id, other]).run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    overlay = json.loads(charts[2].proto.spec)
    assert {t["name"] for t in overlay["data"]} == {run_id, other}
    assert next(m for m in at.metric if m.label == "steps/s").value != "—"


def test_cancel_and_resume_buttons_drive_a_live_worker(db_env, tiny_qwen):
    import psutil

    seed = Store(db_env)
    models.add_model(seed, "tiny", "local", tiny_qwen, params={"thinking": False})
    make_set(seed, "s", [pair(i) for i in range(4)])
    seed.close()
    clear_cached_store()
    from pages._ui import _open_store

    store = _open_store(str(db_env))
    run_id, _ = launcher.start(store, TrainConfig(set_name="s", base_model="tiny",
                                                  **(TINY | {"max_steps": 100_000, "save_steps": 1})))
    end = __import__("time").monotonic() + 240
    while not store.scalar("SELECT count(*) FROM training_metrics WHERE run_id = ?", [run_id]):
        ingest.sync(store, run_id)
        assert __import__("time").monotonic() < end, "no step logged"
    pid = record.get(store, run_id)["pid"]

    at = open_page("pages/train.py")
    assert any(p.proto.text.startswith("running · step") for p in at.get("progress"))
    button(at, "Cancel").click().run()
    assert not at.exception, at.exception
    assert record.get(store, run_id)["state"] == "cancelled"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert any(w.value.startswith("cancelled; resume continues from checkpoint") for w in at.warning)  # escaped text

    button(at, "Resume from the last checkpoint").click().run()
    assert not at.exception, at.exception
    resumed = record.get(store, run_id)
    assert resumed["state"] == "running" and resumed["pid"] != pid
    launcher.cancel(store, run_id)  # leave nothing running
    assert not record.alive(resumed["run_dir"])
