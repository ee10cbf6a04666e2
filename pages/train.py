"""Train: ORPO on a frozen preference set in a background worker; pre-flight, live curves, cancel, resume."""

import streamlit as st

from core.training import PRESETS, TrainConfig, data, figures, ingest, launcher, preflight
from pages._ui import config_form, flash, get_store, made_by, run_action, text

store = get_store()
st.title("Train")
flash()
st.caption("ORPO fine-tunes a student on a frozen preference set (TRL + PEFT LoRA; Unsloth on a CUDA GPU when "
           "installed) in its own process: it keeps running when the browser closes or the dashboard restarts, "
           "and the tuned model is registered for Evaluate, Solve and Mine as soon as it finishes.")

run_action(lambda: ingest.sync_all(store))  # re-attach to workers a previous dashboard process started
sets = data.available_sets(store)
bases = data.available_bases(store)
runs = run_action(lambda: ingest.list_runs(store)) or []

# ---- new run: settings → pre-flight → start ---------------------------------------------------------
if not sets or not bases:
    st.info("**Needs first:** a frozen preference set (Review page, or `pairs import`) and a local base model "
            "(the built-in gemma3-270m-local, or one registered on Settings with provider `local`).")
else:
    with st.expander("New training run", expanded=not runs):
        names = list(PRESETS)
        chosen_preset = st.selectbox("Preset", names, key="train-preset",
                                     help="fills the form; 'original (orpo-train)' is the seed project's set-up")
        cfg = config_form(TrainConfig, f"train-form-{names.index(chosen_preset)}", submit="Check (pre-flight)",
                          choices={"set_name": [s["name"] for s in sets], "base_model": bases},
                          defaults=PRESETS[chosen_preset] | {"base_model": bases[0]})
        if cfg:
            check = run_action(lambda: preflight.preflight(store, cfg))
            if check:
                st.session_state["train-check"] = (cfg.model_dump(), check)
        pending = st.session_state.get("train-check")
        if pending:
            values, pf = pending
            st.subheader("Pre-flight")
            c = st.columns(5)
            c[0].metric("pairs kept", f"{pf['kept']} / {pf['pairs']}")
            c[1].metric("dropped / truncated", f"{len(pf['dropped'])} / {len(pf['truncated'])}")
            c[2].metric("backend", f"{pf['backend']} · {pf['precision']}")
            c[3].metric("memory (est.)", f"{pf['estimate']['memory_gb']} GB")
            c[4].metric("time (est.)", f"{pf['estimate']['seconds'] / 60:.1f} min", help=f"{pf['estimate']['steps']} steps")
            gpu = pf["gpu"]
            tok = pf["tokens"]
            st.caption(
                (f"GPU: {gpu['name']}, {gpu['memory_gb']} GB ({gpu['used_gb']} GB in use), compute {gpu['compute']}"
                 if gpu else "No GPU found: training runs on the CPU in float32 (fine for tiny models only).")
                + f" · free disk {pf['disk_free_gb']} GB · prompt: {pf['template']['kind']} template"
                + (f", thinking {'on' if pf['template']['thinking'] else 'off'}" if pf['template']['thinking'] is not None else "")
                + (f", prefill {pf['template']['prefill']!r}" if pf['template']['prefill'] else ""))
            st.caption(f"Tokens — prompt max {tok['prompt']['max']} (p95 {tok['prompt']['p95']}), chosen max "
                       f"{tok['chosen']['max']}, rejected max {tok['rejected']['max']}; limits: prompt "
                       f"{tok['limits']['max_prompt_length']}, completion {tok['limits']['max_completion_length']}, "
                       f"total {tok['limits']['max_length']}.")
            for w in pf["warnings"]:
                st.warning(w)
            if pf["dropped"] or pf["truncated"]:
                st.dataframe([{"pair": d["idx"], "decision": kind, "why": d["reason"]}
                              for kind, items in (("dropped", pf["dropped"]), ("truncated", pf["truncated"]))
                              for d in items], hide_index=True, width="stretch")
            if st.button("Start training", type="primary", key="train-start", disabled=not pf["kept"]):
                started = run_action(lambda: launcher.start(store, TrainConfig(**values)))
                if started:
                    run_id, what = started
                    st.session_state["train-run"] = run_id
                    st.session_state.pop("train-check", None)
                    flash({"started": f"Started training run {run_id}.", "resumed": f"Resumed run {run_id} (same settings).",
                           "running": f"Run {run_id} with these settings is already running.",
                           "done": f"Run {run_id} with these settings already finished."}[what])
                    st.rerun()

if not runs:
    st.info("No training run yet.")
    st.stop()

# ---- runs -------------------------------------------------------------------------------------------
st.subheader("Runs")
st.dataframe([{"run": r["run"], "state": r["state"], "set": r["set"], "base": r["base"], "backend": r["backend"],
               "steps": r["steps"], "loss": (r["final"] or {}).get("loss"), "tuned model": r["adapter_model"],
               "started": r["created_at"][:19]} for r in runs], hide_index=True, width="stretch")
ids = [r["run"] for r in runs]
default = st.session_state.get("train-run")
# No state in the label: Streamlit 1.67 keeps showing a keyed selectbox's old label when only the
# format_func output changes (streamlit#13788), so "running" would stay after the run is done.
run_id = st.selectbox("Run", ids, index=ids.index(default) if default in ids else 0, key="train-pick",
                      format_func=lambda i: next(f"{r['run']} · {r['set']} on {r['base']}" for r in runs
                                                 if r["run"] == i))
live = next(r for r in runs if r["run"] == run_id)["state"] == "running"


@st.fragment(run_every=2.0 if live else None)
def run_panel() -> None:
    run = run_action(lambda: ingest.sync(store, run_id))
    if not run:
        return
    p = run.get("progress") or {}
    last = p.get("last") or {}
    state = run["state"]
    steps, total = p.get("step") or 0, p.get("max_steps") or 0
    st.progress(min(steps / total, 1.0) if total else 0.0,
                text=f"{state} · step {steps}/{total or '?'} · backend {run['backend'] or '?'} · {p.get('precision') or ''}")
    c = st.columns(5)
    c[0].metric("steps/s", f"{last['steps_per_s']:.3f}" if last.get("steps_per_s") else "—")
    c[1].metric("tokens/s", f"{last['tokens_per_s']:,.0f}" if last.get("tokens_per_s") else "—")
    c[2].metric("GPU memory", f"{last['gpu_mem_gb']:.1f} GB" if last.get("gpu_mem_gb") else "—")
    c[3].metric("ETA", f"{p['eta_s']:.0f} s" if state == "running" and p.get("eta_s") is not None else "—")
    c[4].metric("loss", f"{last['loss']:.4f}" if last.get("loss") is not None else "—")
    if state == "done":
        st.success(f"Done. Tuned model **{text(run['adapter_model'])}** is registered: pick it on Evaluate, "
                   "Solve or Mine.")
    elif state in ("failed", "cancelled") and run.get("message"):
        reason, _, tail = run["message"].partition("\n--- last log lines ---\n")
        (st.error if state == "failed" else st.warning)(text(reason))
    if state == "running" and st.button("Cancel", key=f"train-cancel-{run_id}"):
        if run_action(lambda: launcher.cancel(store, run_id)):
            st.rerun(scope="app")
    if state in ("failed", "cancelled") and st.button("Resume from the last checkpoint", key=f"train-resume-{run_id}"):
        if run_action(lambda: launcher.resume(store, run_id), success="Resumed."):
            st.session_state["train-run"] = run_id
            st.rerun(scope="app")
    rows = ingest.metrics(store, run_id)
    if rows:
        st.plotly_chart(figures.curves(rows, title=f"run {run_id}"), width="stretch", key=f"train-curves-{run_id}")
    else:
        st.caption("No logged step yet: the worker is loading the model.")
    with st.expander("Log (last lines)", expanded=state == "failed"):
        from core.training.files import log_tail

        st.code("\n".join(log_tail(run["run_dir"], 40)) or "(empty)", language=None)
    template = run.get("template") or {}
    st.caption(f"Prompt rendering: {template.get('kind')} template"
               + (f", thinking {'on' if template.get('thinking') else 'off'}" if template.get("thinking") is not None else "")
               + f" · run folder `{run['run_dir']}`")
    made_by(ingest.made_by_record(run))
    if live and state != "running":
        st.rerun(scope="app")  # the run just ended: refresh the list and stop polling


run_panel()

# ---- compare runs -----------------------------------------------------------------------------------
if len(runs) >= 2:
    st.subheader("Compare runs")
    picked = st.multiselect("Runs", ids, default=ids[:2], key="train-overlay")
    metric = st.selectbox("Metric", figures.METRICS, key="train-overlay-metric")
    if picked:
        st.plotly_chart(figures.overlay({r: ingest.metrics(store, r) for r in picked}, metric), width="stretch")
