"""Settings: register models, see keys masked, test a connection, try a model on a set, edit prompts."""

import streamlit as st

from core import config, engine, generations, models, prompts
from core.steps.data import datasets
from core.steps.solve import solve
from pages._ui import (
    estimate_caption,
    flash,
    get_store,
    label_text,
    made_by,
    run_action,
    step_runner,
    table,
    text,
)

store = get_store()
st.title("Settings")
flash()


def key_label(m: dict) -> str:
    """Which variable a model's key comes from and whether it is set; an OpenAI-compatible model without
    api_key_env reads OPENAI_API_KEY, as the SDK does (optional for a local server)."""
    if m["key_env"]:
        return f"{m['key_env']}: {'set' if m['key_set'] else 'NOT SET'}"
    if m["provider"] == "openai":
        state = "set" if config.secret("OPENAI_API_KEY") else "not set"
        return f"OPENAI_API_KEY (default): {state}" + (" — optional for a local server" if m["base_url"] else "")
    return "—"


# ---- keys --------------------------------------------------------------------------------------
st.header("API keys")
st.caption("Keys are read from the environment or .streamlit/secrets.toml, never stored in the database, "
           "logs or exports. Set them before starting the dashboard, e.g. `export GEMINI_API_KEY=…`.")
table([{"variable": k, "value": config.mask(config.secret(k))} for k in ("GEMINI_API_KEY", "OPENAI_API_KEY")])

# ---- models ------------------------------------------------------------------------------------
st.header("Models")
registered = models.list_models(store)
if registered:
    table([{"name": m["name"], "provider": m["provider"], "model id": m["model_id"],
               "base URL": m["base_url"] or "—", "adapter": m["adapter"] or "—",
               "key": key_label(m),
               "params": ", ".join(f"{k}={v}" for k, v in m["params"].items()) or "—"} for m in registered])
    for m in registered:
        if m["description"]:
            st.caption(f"**{label_text(m['name'])}**: {text(m['description'])}")
    c1, c2, c3 = st.columns([2, 1, 1])
    chosen = c1.selectbox("Model", [m["name"] for m in registered])
    if c2.button("Test connection", help="one real call with the model's own settings (its max_tokens); "
                 "the latency and a short reply, or the error in plain words"):
        local = next(m for m in registered if m["name"] == chosen)["provider"] == "local"
        with st.spinner(f"Calling {label_text(chosen)}…" + (" (a local model loads into memory first)" if local else "")):
            res = run_action(lambda: engine.test_model(store, chosen))
        if isinstance(res, dict) and res["ok"]:
            reply = " ".join((res["text"] or "").split())
            reply = reply if len(reply) <= 120 else reply[:120] + "…"
            st.success(f"{label_text(chosen)} answered in {res['latency_s']:.1f} s ({label_text(res['finish_reason'] or 'done')}): "
                       f"{text(reply)}")
        elif isinstance(res, dict):
            st.error(f"{label_text(chosen)} failed: {text(res['error'])}")
    plan = run_action(lambda: models.delete_plan(store, chosen))
    if c3.button("Delete model", disabled=not plan or bool(plan.blockers)):
        st.session_state["delete-model"] = chosen
    if plan and plan.blockers:
        st.caption(f"{label_text(chosen)} cannot be deleted: used by {label_text('; '.join(plan.blockers))}.")
    if plan and st.session_state.get("delete-model") == chosen:
        st.warning(f"Deleting {label_text(repr(chosen))} removes: {', '.join(plan.lines())}.")
        if st.button(f"Yes, delete {label_text(chosen)}", type="primary"):
            st.session_state.pop("delete-model", None)
            if run_action(lambda: models.delete_model(store, chosen)):
                flash(f"Deleted {chosen!r} ({', '.join(plan.lines())}).")
                st.rerun()

with st.expander("Register a model", expanded=not registered):
    st.markdown("- **gemini**: model id like `gemini-2.5-flash`; key from `GEMINI_API_KEY`.\n"
                "- **openai**: any OpenAI-compatible server — vLLM, SGLang, Ollama, LM Studio, hosted APIs: "
                "base URL like `http://127.0.0.1:8000/v1` and the served model name.\n"
                "- **local**: a transformers model folder or hub id (optional PEFT adapter folder); "
                "for small models and tests.")
    # A new form key after each registration: the next model starts from empty fields, while a failed
    # registration keeps what was typed (clear_on_submit would drop it).
    with st.form(f"add-model-{st.session_state.get('add-model-n', 0)}"):
        f1, f2 = st.columns(2)
        name = f1.text_input("Name", placeholder="teacher-flash")
        provider = f2.selectbox("Provider", ["gemini", "openai", "local"])
        model_id = f1.text_input("Model id", placeholder="gemini-2.5-flash / Qwen/Qwen3-14B-AWQ")
        base_url = f2.text_input("Base URL (openai; optional for gemini)")
        adapter = f1.text_input("Adapter folder (local only, optional)")
        params_text = f2.text_area("Params, KEY=VALUE per line", placeholder="temperature=0\nmax_tokens=4096\n"
                                   "thinking_budget=1024\nconcurrency=32\nrpm=1000\napi_key_env=MY_KEY_VAR")
        if st.form_submit_button("Register", type="primary"):
            params = run_action(lambda: models.parse_param_items([ln for ln in params_text.splitlines() if ln.strip()]))
            if params is not None and run_action(lambda: models.add_model(
                    store, name.strip(), provider, model_id, base_url=base_url.strip() or None,
                    params=params, adapter=adapter.strip() or None)):
                flash(f"Registered {name!r}. Use “Test connection” to check it.")
                st.session_state["add-model-n"] = st.session_state.get("add-model-n", 0) + 1
                st.rerun()

# ---- solve panel -------------------------------------------------------------------------------
st.header("Solve")
st.caption("Run a registered model over a dataset, K samples per question. Replies are cached: stopping and "
           "running again never pays twice.")
sets = datasets.list_datasets(store)
if registered and sets:
    names, set_names = [m["name"] for m in registered], [s["name"] for s in sets]

    def preview(shown: dict) -> None:
        if shown["limit"] and not str(shown["limit"]).isdigit():
            st.caption("Limit: a whole number ≥ 1 (empty: all).")
            return
        estimate_caption(lambda: solve.estimate(store, shown["dataset"], shown["model"], int(shown["samples"]),
                                                float(shown["temperature"]) if shown["temperature"] else None,
                                                limit=int(shown["limit"]) if shown["limit"] else None))
        st.caption("Where results go: replies are stored (cached) per model and dataset, not as a prediction set. "
                   "To score them, open Evaluate: it offers the stored replies (“Score these replies”) and sends "
                   "nothing twice.")

    # live: the estimate follows the set, model, K and limit on screen, before anything is pressed
    job = step_runner(store, solve.SolveConfig, solve.start_job, key="solve", kind="solve", live=True,
                      submit="Start solving", columns=4, choices={"model": names, "dataset": set_names},
                      preview=preview)
    if job:
        p = job["params"]

        max_tokens = next((m["params"].get("max_tokens") for m in registered if m["name"] == p["model"]), None)

        def numbers(s: dict, final: bool) -> None:
            a, b, c, d = st.columns(4)
            acc = s.get("accuracy")
            a.metric("accuracy" if final else "accuracy so far", "—" if acc is None else f"{acc:.1%}",
                     help="correct over every question × sample with a gold answer" if final
                     else "over finished samples with a gold answer")
            b.metric("answers extracted", f"{s['answered']}/{s['finished']}")
            c.metric("unparsed", s["unparsed"])
            d.metric("truncated", s["truncated"])
            if s["truncated"]:
                limit = f"max_tokens = {max_tokens}" if max_tokens else "the model's default output limit"
                st.caption(f"Truncated: {s['truncated']} of {s['finished']} replies stopped at {limit} of "
                           f"{text(p['model'])} before they finished, so their answer may be missing (unparsed). "
                           "Raise max_tokens in the model's params (register it again under a new name) for "
                           "complete replies.")

        result = job.get("result") if job["state"] == "done" else None
        if isinstance(result, dict) and "answered" in result:
            # The finished run's own summary (the same numbers as `solve --json`), not the live poll.
            numbers(result | {"finished": result["answered"] + result["unparsed"] + result["errors"]}, True)
        else:
            @st.fragment(run_every=1.0)  # as often as the progress bar above, so the two agree
            def live() -> None:
                s = generations.live_summary(store, p["dataset"], p["model"], p["samples"])
                s["accuracy"] = s["accuracy"] if s["answered_gold"] else None
                numbers(s, False)

            live()
        made_by(solve.last_run(store, p["dataset"], p["model"]))
else:
    st.info("Register a model and import a dataset first.")

# ---- prompts -----------------------------------------------------------------------------------
st.header("Prompt templates")
st.caption("Korean templates, versioned by content hash: editing one changes its hash, so cached replies to the "
           "old version are not reused for the new one. Edits are saved under data/workspace/prompts/.")
templates = prompts.list_templates()
_names = [t.name for t in templates]
tname = st.selectbox("Template", _names, index=_names.index("solve") if "solve" in _names else 0)
tpl = prompts.load(tname)
st.caption(f"hash {tpl.hash}" + (" · edited (override)" if tpl.overridden else " · packaged default"))
edited = st.text_area("Text", tpl.text, height=320, key=f"tpl-{tname}-{tpl.hash}")
e1, e2 = st.columns(2)
if e1.button("Save template", disabled=edited == tpl.text):
    saved = run_action(lambda: prompts.save_override(tname, edited))
    if saved:
        flash(f"Saved {tname} (hash {saved.hash}).")
        st.rerun()
if e2.button("Reset to default", disabled=not tpl.overridden):
    if run_action(lambda: prompts.reset_override(tname)):
        flash(f"{tname} reset to the packaged default.")
        st.rerun()
