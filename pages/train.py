"""Train: ORPO on a frozen preference set in a background worker; pre-flight, live curves, held-out
check, health signals, cancel, resume, sweeps."""

import streamlit as st

from core import jobs, lineage
from core.steps.train import PRESETS, TrainConfig, data, figures, health, ingest, launcher, preflight, sweep
from pages._ui import cached, chart, config_form, flash, get_store, job_panel, launch, made_by, memo, run_action, text

store = get_store()
st.title("Train")
flash()
st.caption("ORPO fine-tunes a student on a frozen preference set (TRL + PEFT LoRA; Unsloth on a CUDA GPU when "
           "installed) in its own process: it keeps running when the browser closes or the dashboard restarts, "
           "and the tuned model is registered for Evaluate, Solve and Mine as soon as it finishes. A share of the "
           "set is held out and scored before and after training, so every run shows whether it learned.")

run_action(lambda: ingest.sync_all(store))  # re-attach to workers a previous dashboard process started
sets = data.available_sets(store)
bases = data.available_bases(store)
runs = run_action(lambda: ingest.list_runs(store)) or []


def _num(v, spec: str = ".4f") -> str:
    return "—" if v is None else format(v, spec)


# ---- new run: settings → pre-flight → start ---------------------------------------------------------
if not sets or not bases:
    st.info("**Needs first:** a frozen preference set (Review page, or `review import`) and a local base model "
            "(the built-in gemma3-270m-local, or one registered on Settings with provider `local`).")
else:
    # Filled only when open: the form (every TrainConfig field) and its pre-flight, sent and laid out
    # hidden on every visit, were a third of the time Train took to open.
    box = st.expander("New training run", expanded=not runs, key="train-new", on_change="rerun")
    if box.open:
        with box:
            names = list(PRESETS)
            chosen_preset = st.selectbox("Preset", names, key="train-preset",
                                         help="fills the form; 'original (orpo-train)' is the seed project's set-up")
            st.caption("**beta (ORPO λ)** — the ORPO authors used 0.1 (0.05 on small sets) and advise 0.5–1.0 for small "
                       "models; the original project's config has 0.8 while its README says 0.15. A sweep (below) "
                       "measures which one works on your pairs.")
            cfg = config_form(TrainConfig, f"train-form-{names.index(chosen_preset)}", submit="Check (pre-flight)",
                              choices={"set_name": [s["name"] for s in sets], "base_model": bases},
                              defaults=PRESETS[chosen_preset] | {"base_model": bases[0]}, adjust=TrainConfig.resolve)
            if cfg:
                check = run_action(lambda: preflight.preflight(store, cfg))
                if check:
                    st.session_state["train-check"] = (cfg.model_dump(), check)
            pending = st.session_state.get("train-check")
            if pending:
                values, pf = pending
                st.subheader("Pre-flight")
                c = st.columns(5)
                c[0].metric("pairs kept", f"{pf['kept']} / {pf['pairs']}",
                            help=f"{pf['train_pairs']} to train on, {pf['heldout_pairs']} held out for the check")
                c[1].metric("train / held out", f"{pf['train_pairs']} / {pf['heldout_pairs']}")
                c[2].metric("dropped / truncated", f"{len(pf['dropped'])} / {len(pf['truncated'])}")
                c[3].metric("backend", f"{pf['backend']} · {pf['precision']}")
                c[4].metric("time (est.)", f"{pf['estimate']['seconds'] / 60:.1f} min",
                            help=f"{pf['estimate']['steps']} steps; memory ≈ {pf['estimate']['memory_gb']} GB")
                gpu = pf["gpu"]
                tok = pf["tokens"]
                st.caption(
                    (f"GPU: {gpu['name']}, {gpu['memory_gb']} GB ({gpu['used_gb']} GB in use), compute {gpu['compute']}"
                     if gpu else "No GPU found: training runs on the CPU in float32 (fine for tiny models only).")
                    + f" · effective batch {pf['effective_batch']} (per device {values['per_device_train_batch_size']} × "
                    + f"{pf['processes']} process{'es' if pf['processes'] > 1 else ''} × accumulation "
                    + f"{values['gradient_accumulation_steps']})"
                    + f" · memory ≈ {pf['estimate']['memory_gb']} GB · free disk {pf['disk_free_gb']} GB · prompt: "
                    + f"{pf['template']['kind']} template"
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
                if st.button("Start training", type="primary", key="train-start", disabled=not pf["train_pairs"]):
                    started = run_action(lambda: launcher.start(store, TrainConfig(**values)))
                    if started:
                        run_id, what = started
                        st.session_state["train-run"] = run_id
                        st.session_state["train-pick"] = run_id  # the selector follows the run just started
                        st.session_state.pop("train-check", None)
                        flash({"started": f"Started training run {run_id}.", "resumed": f"Resumed run {run_id} (same settings).",
                               "running": f"Run {run_id} with these settings is already running.",
                               "done": f"Run {run_id} with these settings already finished."}[what])
                        st.rerun()
                with st.popover("Sweep a setting instead"):
                    st.caption("One run per value, one after another, with the settings above for the rest; each is an "
                               "ordinary run (a stopped sweep resumes). Compared on the held-out pairs.")
                    grid_text = st.text_area("Values to try (one setting per line)", "beta=0.1,0.25,0.5,0.8",
                                             key="train-sweep-grid")
                    if st.button("Start sweep", key="train-sweep-start"):
                        def start_sweep():
                            grid = sweep.parse_grid([ln for ln in grid_text.splitlines() if ln.strip()])
                            config = sweep.SweepConfig(train=values, grid=grid)
                            grid_points = sweep.points(config)  # checked here: a bad value fails before the job
                            n = len(grid_points)

                            def body(ctx):
                                def progress(i, total, run):
                                    p = (run or {}).get("progress") or {}
                                    ctx.progress(done=i, total=total, message=f"{sweep.label(grid_points[i][0])}: "
                                                 f"step {p.get('step') or 0}/{p.get('max_steps') or '?'}")
                                return sweep.run(store, config, on_progress=progress, stop=ctx.cancelled)

                            return jobs.start(store, "train-sweep", f"sweep of {n} runs", body, total=n)

                        if launch("train-sweep-job", start_sweep):
                            st.session_state.pop("train-check", None)
                            st.rerun()

job_panel(store, "train-sweep-job", kind="train-sweep")

if not runs:
    st.info("No training run yet.")
    st.stop()

# ---- runs -------------------------------------------------------------------------------------------
st.subheader("Runs")


def _heldout_cell(r, which: str) -> str:
    h = (r.get("heldout") or {}).get(which) or {}
    return "—" if h.get("margin") is None else f"{h['margin']:+.3f} · {h['accuracy']:.0%}"


# The table once ran wider than the page: the tuned model (base-orpo-RUN, last) and the start time were cut
# off at the right. The tuned model comes third, at its own width; the held-out headers are short, their
# meaning in the tooltip.
_HELD = "mean margin (chosen − rejected log-prob) · preference accuracy on the held-out pairs"
st.dataframe([{"run": r["run"], "state": r["state"], "tuned model": r["adapter_model"] or "—", "set": r["set"],
               "base": r["base"], "backend": r["backend"] or "—",
               "steps": r["steps"] if r["steps"] is not None else "—", "loss": _num((r["final"] or {}).get("loss")),
               "held-out base (margin · acc)": _heldout_cell(r, "base"),
               "held-out tuned (margin · acc)": _heldout_cell(r, "tuned"),
               "started": r["created_at"][:16]} for r in runs],
             hide_index=True, width="stretch",
             column_config={"tuned model": st.column_config.TextColumn(width=170),
                            "held-out base (margin · acc)": st.column_config.TextColumn(
                                "held-out base", help=f"the base model (adapter off): {_HELD}"),
                            "held-out tuned (margin · acc)": st.column_config.TextColumn(
                                "held-out tuned", help=f"the tuned model: {_HELD}")})
ids = [r["run"] for r in runs]
if st.session_state.get("train-pick") not in ids:
    st.session_state["train-pick"] = st.session_state.get("train-run") if st.session_state.get("train-run") in ids else ids[0]
# No state in the label: Streamlit 1.67 keeps showing a keyed selectbox's old label when only the
# format_func output changes (streamlit#13788), so "running" would stay after the run is done.
run_id = st.selectbox("Run", ids, key="train-pick",
                      format_func=lambda i: next(f"{r['run']} · {r['set']} on {r['base']}" for r in runs
                                                 if r["run"] == i))
live = next(r for r in runs if r["run"] == run_id)["state"] == "running"


def _sweep_figure(store, sweep_id: str):
    """A finished sweep's chart, built (and escaped, pages/_ui.py:chart) once per write to the store."""
    return figures.sweep(next(s for s in sweep.list_sweeps(store) if s["id"] == sweep_id)["summary"]["results"])


def _overlay(store, run_ids: tuple[str, ...], metric: str):
    return figures.overlay({r: ingest.metrics(store, r) for r in run_ids}, metric)


def _curves(store, run_id: str, all_curves: bool):
    rows = ingest.metrics(store, run_id)
    return rows, (figures.curves(rows, title=f"run {run_id}", key_only=not all_curves) if rows else None)


def lineage_line(set_name: str) -> None:
    """Where the run's pairs came from (core/lineage.py): set ← augment run ← mining run ← pool."""
    walk = run_action(lambda: cached(lineage.of_set, store, set_name))
    if not walk:
        return
    mined = ", ".join(f"{m['run']} (pool {m.get('pool', '?')}, {m.get('teacher', '?')} vs {m.get('student', '?')})"
                      for m in walk["mining_runs"]) or "—"
    st.caption(text(f"Lineage: set {set_name} ({walk['set']['pairs']} pairs, {walk['traced']} traced to their seed) "
                    f"← augment run {', '.join(walk['augment_runs']) or '— (imported)'} ← mining run {mined} · "
                    f"python -m core lineage model NAME walks it pair by pair"))


lineage_line(next(r for r in runs if r["run"] == run_id)["set"])


def heldout_panel(run) -> None:
    h = run.get("heldout")
    if not h:
        if (run.get("config") or {}).get("heldout_fraction", 0) == 0:
            st.caption("Held-out check off (heldout_fraction 0): nothing shows whether this run learned.")
        elif run["state"] == "running":
            st.caption("Held-out check: scoring before the first step…")
        return
    st.markdown("**Held-out check** — pairs this run never trained on")
    base, tuned = h.get("base") or {}, h.get("tuned") or {}
    st.dataframe([{"model": name, "pairs": h.get("pairs"), "at step": x.get("step", 0) if x else "—",
                   "preference accuracy": _num(x.get("accuracy"), ".0%") if x else "—",
                   "mean margin (chosen − rejected)": _num(x.get("margin"), "+.4f") if x else "—",
                   "chosen log-prob": _num(x.get("chosen_logp"), "+.4f") if x else "—",
                   "rejected log-prob": _num(x.get("rejected_logp"), "+.4f") if x else "—"}
                  for name, x in (("base (adapter off)", base), ("tuned", tuned))], hide_index=True, width="stretch",
                 key=f"train-heldout-{run['id']}")
    warn = health.verdict(h)
    if warn and run["state"] != "running":
        st.warning(warn)
    if len(h.get("history") or []) >= 2:
        fig = (memo(("train-heldout", store.path, run["id"], run["state"], len(h["history"])),
                    lambda: figures.heldout(h)) if run["state"] != "running" else figures.heldout(h))
        chart(fig, width="stretch", key=f"train-heldout-fig-{run['id']}")


def health_badges(rows, h) -> None:
    sig = health.signals(rows, h)
    cols = st.columns(len(sig))
    for col, s in zip(cols, sig):
        color = {"ok": "green", "warn": "orange", "unknown": "gray"}[s["state"]]
        icon = {"ok": ":material/check:", "warn": ":material/warning:", "unknown": ":material/help:"}[s["state"]]
        col.badge(s["title"], icon=icon, color=color, help=s["detail"])
        if s["state"] == "warn":
            col.caption(s["detail"])


@st.fragment(run_every=2.0 if live else None)
def run_panel() -> None:
    run = run_action(lambda: ingest.sync(store, run_id))
    if not run:
        return
    p = run.get("progress") or {}
    last = p.get("last") or {}
    state = run["state"]
    steps, total = p.get("step") or 0, p.get("max_steps") or 0
    phase = p.get("state") if state == "running" and p.get("state") not in (None, "training") else None
    st.progress(min(steps / total, 1.0) if total else 0.0,
                text=f"{state}{f' ({phase})' if phase else ''} · step {steps}/{total or '?'} · backend "
                     f"{run['backend'] or '?'} · {p.get('precision') or ''}")
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
    heldout_panel(run)
    # a finished run's curves are drawn once per write to the store; a running one's on every poll
    all_curves = st.toggle("All curves", key="train-all-curves",
                           help="NLL loss, log-odds ratio, learning rate, grad norm and tokens/s beside the four "
                                "that say whether ORPO learns")
    rows, fig = (memo(("train-curves", store.path, run_id, state, steps, all_curves),
                      lambda: _curves(store, run_id, all_curves))
                 if state != "running" else _curves(store, run_id, all_curves))
    if rows:
        health_badges(rows, run.get("heldout"))
        chart(fig, width="stretch", key=f"train-curves-{run_id}")
    else:
        st.caption("No logged step yet: the worker is loading the model.")
    with st.expander("Log (last lines)", expanded=state == "failed"):
        from core.steps.train.files import log_tail

        st.code("\n".join(log_tail(run["run_dir"], 40)) or "(empty)", language=None)
    template = run.get("template") or {}
    st.caption(f"Prompt rendering: {template.get('kind')} template"
               + (f", thinking {'on' if template.get('thinking') else 'off'}" if template.get("thinking") is not None else "")
               + f" · run folder `{run['run_dir']}`")
    made_by(ingest.made_by_record(run))
    if live and state != "running":
        st.rerun(scope="app")  # the run just ended: refresh the list and stop polling


run_panel()

# ---- sweeps -----------------------------------------------------------------------------------------
done_sweeps = [s for s in cached(sweep.list_sweeps, store) if s.get("summary")]
if done_sweeps:
    st.subheader("Sweeps")
    pick = st.selectbox("Sweep", [s["id"] for s in done_sweeps], key="train-sweep-pick",
                        format_func=lambda i: next(f"{s['id']} · " + ", ".join(s["config"]["grid"]) for s in done_sweeps
                                                   if s["id"] == i))
    res = next(s for s in done_sweeps if s["id"] == pick)["summary"]["results"]
    if res:
        chart(cached(_sweep_figure, store, pick), width="stretch", key=f"train-sweep-fig-{pick}")
        st.dataframe([{"setting": r["label"], "state": r["state"], "held-out pairs": r["heldout_pairs"],
                       "margin base → tuned": f"{_num(r['base_margin'], '+.4f')} → {_num(r['tuned_margin'], '+.4f')}",
                       "accuracy base → tuned": f"{_num(r['base_accuracy'], '.0%')} → {_num(r['tuned_accuracy'], '.0%')}",
                       "run": r["run"]} for r in res], hide_index=True, width="stretch")

# ---- compare runs -----------------------------------------------------------------------------------
if len(runs) >= 2:
    st.subheader("Compare runs")
    # Drawn when asked: one more chart on every visit made Train slow to open.
    picked = st.multiselect("Runs", ids, key="train-overlay", placeholder="pick runs to draw one metric of each")
    metric = st.selectbox("Metric", figures.METRICS, key="train-overlay-metric")
    if picked:
        chart(cached(_overlay, store, tuple(picked), metric), width="stretch")
