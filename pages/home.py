"""Home: the pipeline at a glance, with what each step holds and a link to it."""

import streamlit as st

from core import datasets, jobs, pipeline
from pages._ui import get_store, run_action, table

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
