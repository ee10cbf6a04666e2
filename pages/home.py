"""Home: the pipeline at a glance, with what each step holds and a link to it."""

import streamlit as st

from core import jobs, pipeline, recipe, recipe_run, recipe_view
from core.steps.data import datasets
from pages._ui import chart, get_store, job_panel, label_text, launch, run_action, saved_upload, table

store = get_store()
st.title("CSAT reasoning distillation")
st.caption("Data → Mine → Augment → Review → Train → Evaluate → Visualise: teach a small student "
           "to reason like a strong teacher on 수능-style questions, from a few hundred preference pairs.")

for row in pipeline.status(store):
    with st.container(border=True):
        left, right = st.columns([4, 1])
        with left:
            st.markdown(f"**{row['step']}** — " + (row["holds"] or f"empty; {row['needs']}"))
            if row["last"]:
                st.caption(f"last run {row['last']:%Y-%m-%d %H:%M}")
        with right:
            st.markdown(f"[Open {row['step']}](/{row['page']})")

if not datasets.pipeline_counts(store)["datasets"]:
    st.info("No data yet. Load the bundled sample questions (original 수능-style items) to try every step.")
    if st.button("Load sample data", type="primary"):
        if run_action(lambda: datasets.load_samples(store), "Sample data loaded."):
            st.rerun()

recent = jobs.list_jobs(store, limit=8)
if recent:
    st.subheader("Recent jobs")
    table([{"job": j["label"], "kind": j["kind"], "state": j["state"], "progress": f"{j['done']}/{j['total']}",
               "errors": j["errors"], "started": f"{j['started_at']:%Y-%m-%d %H:%M}" if j["started_at"] else "—",
               "message": j["message"] or ""} for j in recent])

# ---- recipes: whole rounds of the method from one TOML file (core/recipe*.py) ----------------------

st.subheader("Recipe")
st.caption("One TOML file names the pool, test set, teacher, student, rounds and each step's settings; each round "
           "mines with the last round's tuned student, trains, and is measured against the base and the round "
           "before. Every step is an ordinary run, so a stopped recipe resumes and a finished one costs nothing again.")
source = st.radio("Recipe file", ["Shipped", "Upload"], horizontal=True, key="recipe-source")
if source == "Shipped":
    shipped = {p.name: p for p in recipe.shipped_recipes()}
    picked = st.selectbox("Recipe", list(shipped), key="recipe-file") if shipped else None
    path = shipped.get(picked) if picked else None
else:
    path = saved_upload(st.file_uploader("Recipe (.toml)", type=["toml"], key="recipe-upload"), "recipe-upload")
config = run_action(lambda: recipe.load(path)) if path else None
if config:
    plan = run_action(lambda: recipe.plan(store, config))
    if isinstance(plan, dict):
        st.markdown(f"**{label_text(plan['name'])}** · {plan['rounds']} round(s) · stop when: "
                    f"{label_text(', '.join(plan['stop'])) or 'never (all rounds)'} · hash {plan['hash']}")
        st.dataframe(plan["steps"], hide_index=True, width="stretch")
        for w in plan["warnings"]:
            st.warning(w)
        est = plan.get("estimate")
        if est:
            st.caption("Round 1 mining: " + "; ".join(
                f"{who} {x['to_send']} to send, {x['cached']} cached"
                + ("" if x["est_cost_usd"] is None else f", ≈ ${x['est_cost_usd']:.4f}")
                for who, x in est["round_1_mining"].items())
                + f". Augment ≤ {est['augment_requests_max_per_round']} teacher requests a round; "
                  f"evaluation {est['eval_requests_per_round']} a round.")
        elif plan.get("estimate_note"):
            st.caption(f"Estimate: {plan['estimate_note']}.")
    if st.button("Run recipe", type="primary", key="recipe-run"):
        launch("recipe-job", lambda: recipe_run.start_job(store, config))
    job_panel(store, "recipe-job", kind="recipe")

    @st.fragment(run_every=2.0)
    def rounds_timeline() -> None:
        last = recipe_run.latest(store, config)
        summary = (last or {}).get("summary")
        if not summary or not summary.get("rounds"):
            st.caption("No round of this recipe has run yet.")
            return
        st.markdown(f"**Rounds** · run {last['id']} · {last['state']}"
                    + (f" · stopped: {summary['stopped']}" if summary.get("stopped") else "")
                    + (f" · bundle `{summary['bundle']}`" if summary.get("bundle") else ""))
        st.dataframe(recipe_view.rows(summary), hide_index=True, width="stretch")
        fig = recipe_view.figure(summary)
        if fig is not None:
            chart(fig, key="recipe-figure")

    rounds_timeline()
