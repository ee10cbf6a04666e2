"""Augment: structure extraction and blueprint prompting on a mining run's hard negatives, with gates."""

import plotly.express as px
import streamlit as st

from core import models
from core.steps.augment import augment
from core.steps.augment.augment import AugmentConfig
from core.steps.augment.gates import GATES
from pages._ui import (
    cached,
    chart,
    flash,
    get_store,
    label_text,
    made_by,
    run_action,
    show_question,
    step_runner,
    text,
)

# Words in the table, Material icons in text: both render without an emoji font.
BADGE = {True: "pass", False: "FAIL", None: "—"}
ICON = {True: ":green[:material/check_circle:]", False: ":red[:material/cancel:]", None: ":gray[:material/remove:]"}



def _gate_bars(store, run_id: str):
    """Pass rate per gate: built (and escaped, pages/_ui.py:chart) once per write to the store."""
    rates = augment.gate_rates(store, run_id)
    return px.bar([{"gate": r["gate"], "pass rate": r["pass_rate"] or 0.0, "failed here": r["failed"],
                    "reached": r["reached"]} for r in rates], x="gate", y="pass rate", text="failed here",
                  hover_data=["reached"], range_y=[0, 1],
                  title="Pass rate per gate, in order (label: candidates counted as failing there)")


def _candidates(store, run_id: str, status: str, seed_filter: str) -> list[dict]:
    return augment.candidates(store, run_id, failed_gate=status if status in GATES else None,
                              passed={"passed": True, "failed": False}.get(status),
                              seed_qid=None if seed_filter == "(all)" else seed_filter)


store = get_store()
st.title("Augment")
flash()
st.caption("For each hard negative the teacher names the reasoning structure and the student's error, then writes "
           "new questions with the same logic on another subject matter (a transfer target), each with a chosen "
           "and a rejected reasoning. Gates, in order: " + " → ".join(GATES) + ". A candidate counts under the "
           "first gate it fails; only candidates that pass the cheap gates are re-solved (paid).")

sources = cached(augment.mining_runs, store)
names = [m["name"] for m in cached(models.list_models, store)]
if not sources or not names:
    st.info("**Needs first:** a mining run with hard negatives (Mine page) and a registered teacher model "
            "(Settings page).")
    st.stop()

# ---- start a run -------------------------------------------------------------------------------
with st.expander("New augment run", expanded=not cached(augment.list_runs, store)):
    st.caption("Transfer targets: leave *targets* empty to use the editable per-subject list (the 'targets' "
               "template on the Settings page), or write SUBJECT=target; another target per line.")
    labels = {s["run"]: f"{s['run']} · {s['pool']} · {s['seeds']} hard negatives" for s in sources}
    # The teacher that mined the newest run (as Mine defaults to the registered teacher), not the first
    # model registered (the built-in Gemma, which cannot write blueprints).
    teacher = next((s["teacher"] for s in sources if s.get("teacher") in names), None) or next(
        (m["name"] for m in cached(models.list_models, store) if m["provider"] == "gemini"), names[0])

    def confirm(pending: AugmentConfig) -> bool:
        """The estimate of the settings submitted, and the button that starts them."""
        est = run_action(lambda: augment.estimate(store, pending))
        if not isinstance(est, dict):
            return False
        cost = f"≈ ${est['est_cost_usd']:.4f} at most" if est["est_cost_usd"] is not None else "cost unknown"
        st.info(f"{est['seeds']} seeds × {pending.per_seed}: {est['structure_requests']} structure requests "
                f"({est['structures_cached']} cached), up to {est['blueprint_requests']} blueprints and "
                f"{est['resolve_requests_max']} re-solves to send; ~{est['input_tokens']:,} input and "
                f"~{est['output_tokens']:,} output tokens, {cost}.")
        return st.button("Start augment", type="primary")

    step_runner(store, AugmentConfig, augment.start_job, key="augment", kind="augment", submit="Estimate cost",
                choices={"mining_run": list(labels), "teacher": names, "student": names},
                labels={"mining_run": labels}, defaults={"teacher": teacher}, confirm=confirm)

# ---- results -----------------------------------------------------------------------------------
done = [r for r in cached(augment.list_runs, store) if r["candidates"] is not None]
if not done:
    st.info("No augment run has finished yet.")
    st.stop()
run_id = st.selectbox("Run", [r["run"] for r in done], format_func=lambda r: next(
    f"{x['run']} · mining run {x['mining_run']} · {x['teacher']} · {x['state']} · {x['created_at'][:16]}"
    for x in done if x["run"] == r))
run = cached(augment.get_run, store, run_id)
made_by(run)
summary = cached(augment.summarise, store, run_id)
m1, m2, m3, m4 = st.columns(4)
m1.metric("seeds", summary["seeds"] or 0)
m2.metric("candidates", summary["candidates"])
m3.metric("passed every gate", summary["passed"])
m4.metric("student already right", summary["student_solved"])
s = run["summary"] or {}
if s.get("est_cost_usd") is not None or s.get("requests_sent") is not None:
    st.caption(f"Last pass: {s.get('requests_sent', 0)} requests sent, {s.get('cached', 0)} cached"
               + (f", ≈ ${s['est_cost_usd']:.4f}" if s.get("est_cost_usd") is not None else "")
               + (f"; {s['structures_failed']} seed(s) without a usable structure" if s.get("structures_failed") else "")
               + (f"; {s['errors']} failed request(s): run again to retry" if s.get("errors") else "") + ".")
cfg = run["config"]
st.caption(f"Thresholds: contamination n-gram ≥ {cfg['contamination_ngram']}, duplicate n-gram ≥ "
           f"{cfg['duplicate_ngram']}, Korean ≥ {cfg['min_korean']:.0%} Hangul. Embedding thresholds "
           f"({cfg['contamination_embedding']}, {cfg['duplicate_embedding']}) apply when an embedder is used.")

if summary["candidates"]:
    chart(cached(_gate_bars, store, run_id), width="stretch")

# ---- structures per seed -----------------------------------------------------------------------
with st.expander("Structures per seed"):
    for srow in cached(augment.structures, store, run_id):
        stc = srow["structure"]
        st.markdown(f"**{text(srow['seed_qid'])}** · {text(srow['subject'])} · {text((srow['question'] or '')[:80])}")
        if stc:
            st.markdown("구조: " + text(stc.get("structure")) + "  \n오류 유형: " + text(stc.get("error_pattern")))
            st.markdown("  \n".join(f"{i}. {text(x)}" for i, x in enumerate(stc.get("golden_steps") or [], 1)))
        else:
            st.warning(f"No usable structure: {text(srow['error'])}")

# ---- candidates --------------------------------------------------------------------------------
st.header("Candidates")
f1, f2 = st.columns(2)
status = f1.selectbox("Gates", ["all", "passed", "failed", *GATES],
                      format_func=lambda v: v if v in ("all", "passed", "failed") else f"failed first at {v}")
seed_filter = f2.selectbox("Seed", ["(all)", *sorted({r["seed_qid"] for r in cached(augment.candidates, store, run_id)})])
listed = cached(_candidates, store, run_id, status, seed_filter)
if not listed:
    st.info("No candidates with these filters.")
    st.stop()
st.dataframe([{"id": c["id"], "seed": c["seed_qid"], "#": c["idx"], "first failure": c["failed_gate"] or "—",
               **{g: BADGE[(c["gates"] or {}).get(g, {}).get("ok")] for g in GATES},
               "reason": ((c["gates"] or {}).get(c["failed_gate"] or "", {}) or {}).get("reason", ""),
               "student right": {True: "yes", False: "no", None: "—"}[c["student_solved"]],
               "review": c["status"], "question": (c["question"] or "")[:60], "target": c["target"]} for c in listed],
             hide_index=True, width="stretch",
             # a gate's name ("rejected_answer", "contamination") and its reason were cut in auto-sized cells
             column_config={"first failure": st.column_config.TextColumn(width=140),
                            "reason": st.column_config.TextColumn(width="large"),
                            "question": st.column_config.TextColumn(width="large")})
cid = st.selectbox(f"Open one of {len(listed)}", [c["id"] for c in listed])
c = next(x for x in listed if x["id"] == cid)
with st.container(border=True):
    st.caption(f"{label_text(c['subject'])} · seed {label_text(c['seed_qid'])} (mining run {c['mining_run']}) · "
               f"target: {label_text(c['target'])} · review: {c['status']} · version {c['version']}")
    if c["question"]:
        show_question({"paragraph": c["passage"], "question": c["question"], "extra": c["extra"],
                       "choices": c["choices"] or [], "points": None}, highlight={c["answer"]: "정답"}
                      if c["answer"] else None)
    else:
        st.warning("The reply was not a blueprint object:")
        st.code(str((c["raw"] or {}).get("_reply") or c["raw"])[:2000], language=None)
for g in GATES:
    r = (c["gates"] or {}).get(g) or {"ok": None, "reason": "not checked"}
    st.markdown(f"{ICON[r['ok']]} **{label_text(g)}** — {text(r['reason'])}")
if c["nearest_test"]:
    n = c["nearest_test"]
    st.caption(f"Nearest test question: {label_text(n['dataset'])}/{label_text(n['qid'])} at similarity {n['similarity']:.2f} ({label_text(n['method'])}).")
if c["question"]:
    left, right = st.columns(2)
    with left:
        st.subheader("Chosen")
        st.markdown(text(c["chosen"]))
    with right:
        st.subheader("Rejected")
        st.markdown(text(c["rejected"]))
