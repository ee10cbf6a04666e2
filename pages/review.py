"""Review: each generated pair as an exam question above chosen and rejected reasoning side by side;
accept / edit / reject with one click (a fragment: no full-page reload); bulk accept after a
confirmation; provenance both ways; freeze, import and export preference sets."""

import json
import tempfile
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.errors import NotFound
from core.render import choice_label
from core.runs import get_run
from core.steps import plural
from core.steps.augment import gates
from core.steps.data.datasets import parse_mapping
from core.steps.review import preference_sets as ps
from core.steps.review import review
from pages._ui import config_form, flash, get_store, label_text, made_by, run_action, show_question, text

store = get_store()
st.title("Review")
flash()
st.caption("Each candidate is a preference pair: a new question with a chosen reasoning (right answer) and a "
           "rejected one (the student's kind of error). Accept, edit or reject it; freeze the accepted pairs as a "
           "named set that training reads.")

GATE_OPTIONS = ["any", "passed", "failed"]
STATUS_OPTIONS = ["pending", "any", "accepted", "rejected"]


def rerun_panel() -> None:
    """Rerun just the review fragment; during a full-page run (first load, AppTest) the whole page."""
    try:
        st.rerun(scope="fragment")
    except StreamlitAPIException:
        st.rerun()


def gate_badges(gates: dict) -> None:
    """One badge per gate in gate order: green passed, red failed, grey not checked; failure reasons below."""
    if not gates:
        st.caption("Not gated yet.")
        return
    badges = []
    for gate, res in gates.items():
        ok = res.get("ok") if isinstance(res, dict) else res
        color, icon = ("green", "check") if ok else ("red", "close") if ok is False else ("gray", "remove")
        badges.append(f":{color}-badge[:material/{icon}: {label_text(gate)}]")
    st.markdown(" ".join(badges))
    for gate, res in gates.items():
        if isinstance(res, dict) and res.get("ok") is False:
            st.caption(f":red[**{label_text(gate)}**]: {text(res.get('reason'))}")


def box_height(*texts: str) -> int | str:
    """A fixed, scrolling height only for long texts (so two columns line up); short ones fit."""
    longest = max(len(t or "") + 40 * (t or "").count("\n") for t in texts)
    return 420 if longest > 700 else "content"


def reasoning_column(title: str, lines: list[tuple[str, bool]], answer: int | None, other: int | None,
                     height: int | str) -> None:
    """A reasoning with the lines that differ from the other one highlighted, and its final answer."""
    st.markdown(f"**{title}**")
    shown = []
    for line, same in lines:
        body = text(line) or "&nbsp;"
        shown.append(body if same or not line.strip() else f":orange-background[{body}]")
    with st.container(border=True, height=height):
        st.markdown("  \n".join(shown))
    label = choice_label(answer) if answer else "없음"
    st.markdown(f"최종 답: :red-background[**{label}**]" if answer != other else f"최종 답: **{label}**")


runs = review.runs(store)
if not runs:
    st.info("**Needs first:** generated candidates (Augment page). You can still import a preference set below.")
run_id = None
# Deep links from other pages: review?pair=ID (that pair) or review?seed=QID[&run=RUN] (every pair of a seed).
link = {k: st.query_params.get(k) for k in ("pair", "seed", "run")}
if any(link.values()) and st.session_state.get("review-link") != link:
    st.session_state["review-link"] = link
    target_pair = run_action(lambda: review.get_pair(store, link["pair"])) if link["pair"] else None
    if target_pair:
        link["run"], link["seed"] = target_pair["run_id"], target_pair["seed_qid"]
        st.session_state["review-cur"] = target_pair["id"]
    if link["run"] in [r["run"] for r in runs]:
        st.session_state["review-run"] = link["run"]
    if link["seed"]:
        st.session_state["review-seed"] = link["seed"]
        st.session_state["review-status"] = "any"
if runs:
    # No review counts in the label: Streamlit 1.67 keeps showing a keyed selectbox's old label when only
    # the format_func output changes (streamlit#13788); the counts are the metrics below.
    run_id = st.selectbox("Augment run", [r["run"] for r in runs], key="review-run", format_func=lambda r: next(
        f"{x['run']} · mining {x['mining_run']} · {x['candidates']} candidates" for x in runs if x["run"] == r))
    try:
        made_by(get_run(store, run_id))
    except NotFound:  # a run record Augment did not write: no line to show
        pass

# ---- filters, counts, bulk accept ---------------------------------------------------------------
if run_id:
    fac = review.facets(store, run_id)
    f1, f2, f3, f4, f5 = st.columns([2, 2, 2, 2, 1])
    subject = f1.selectbox("Subject", ["any", *fac["subject"]], key="review-subject")
    gate = f2.selectbox("Gates", GATE_OPTIONS + [f"failed {g}" for g in fac["failed_gate"]], key="review-gate")
    status = f3.selectbox("Review status", STATUS_OPTIONS, key="review-status")
    if st.session_state.get("review-seed") not in (None, "any", *fac["seed"]):
        st.session_state["review-seed"] = "any"  # a linked seed with no pair in this run
    seed = f4.selectbox("Seed question", ["any", *fac["seed"]], key="review-seed")
    target = f5.number_input("Target", 1, 100_000, review.DEFAULT_TARGET, key="review-target")
    filters = {"run": run_id, "subject": None if subject == "any" else subject,
               "status": None if status == "any" else status, "seed": None if seed == "any" else seed,
               "gate": None if gate == "any" else gate.removeprefix("failed ") if gate.startswith("failed ")
               else gate}

    @st.fragment
    def review_panel() -> None:
        """Counts, navigation, the pair and its decision buttons: a decision reruns only this part."""
        c = review.counts(store, run_id, int(target))
        m1, m2, m3, m4, m5 = st.columns(5)
        m1.metric("accepted", f"{c['accepted']} / {c['target']}")
        m2.metric("pending", c["pending"])
        m3.metric("rejected", c["rejected"])
        m4.metric("pass every gate", f"{c['passed']} / {c['total']}")
        m5.metric("to target", c["to_target"])
        st.progress(min(c["accepted"] / c["target"], 1.0), text=f"{c['accepted']} of {c['target']} accepted")
        ready = c["passing_pending"]
        _, b2 = st.columns([3, 2])
        with b2:
            if not st.session_state.get("review-confirm"):
                if st.button(f"Accept all {ready} passing pending pairs…", disabled=not ready, key="review-bulk"):
                    st.session_state["review-confirm"] = ready
                    rerun_panel()
            else:
                n = st.session_state["review-confirm"]
                st.warning(f"Accept {n} pending pairs that pass every gate? Each acceptance is recorded in its history.")
                y, no = st.columns(2)
                if y.button(f"Yes, accept {n}", type="primary", key="review-bulk-yes"):
                    st.session_state.pop("review-confirm")
                    done = run_action(lambda: review.accept_passing(store, run_id, expected=n))
                    if done is not None:
                        flash(f"Accepted {plural(len(done), 'pair')}.")
                        st.rerun()
                if no.button("Cancel", key="review-bulk-no"):
                    st.session_state.pop("review-confirm")
                    rerun_panel()

        if msg := st.session_state.pop("review-said", None):
            st.success(text(msg))

        pairs = review.list_pairs(store, **filters)
        if not pairs:
            st.info("No pair matches these filters." + (" Every pair has been decided." if status == "pending" else ""))
            return
        ids = [p["id"] for p in pairs]
        before = st.session_state.get("review-filters")
        st.session_state["review-filters"] = dict(filters)
        if before is not None and before != filters:  # another filter: start at its first pair
            st.session_state.pop("review-cur", None)
            st.session_state["review-pos"] = 0
        cur = st.session_state.get("review-cur")
        if cur not in ids:
            pos = min(st.session_state.get("review-pos", 0), len(ids) - 1)
            cur = ids[pos]
        pos = ids.index(cur)
        st.session_state["review-cur"], st.session_state["review-pos"] = cur, pos
        pair = pairs[pos]

        n1, n2, n3 = st.columns([1, 4, 1])
        if n1.button("← Previous", disabled=pos == 0, key="review-prev", width="stretch"):
            st.session_state["review-cur"] = ids[pos - 1]
            rerun_panel()
        n2.markdown(f"**{pos + 1} / {len(ids)}** · `{pair['id']}` · {text(pair.get('subject') or '-')} · "
                    f"seed {text(pair['seed_qid'])} · target {text(pair.get('target') or '-')} · "
                    f"**{pair['status']}**" + (f" ({text(pair['review_reason'])})" if pair.get("review_reason") else ""))
        if n3.button("Next →", disabled=pos >= len(ids) - 1, key="review-next", width="stretch"):
            st.session_state["review-cur"] = ids[pos + 1]
            rerun_panel()

        def decided(message: str) -> None:
            """After a decision: stay at this position (a pending filter moves the next pair up) and rerun."""
            after = ids[pos + 1] if pos + 1 < len(ids) else (ids[pos - 1] if pos else None)
            st.session_state["review-cur"] = after if filters["status"] else pair["id"]
            st.session_state["review-said"] = message
            rerun_panel()

        show_question(gates.as_question(pair), highlight={pair["answer"]: "정답"} if pair.get("answer") else None)
        gate_badges(pair.get("gates") or {})
        if pair.get("nearest_test"):
            nt = pair["nearest_test"]
            st.caption(f"Nearest test question: {text(str(nt.get('dataset')))}/{text(str(nt.get('qid')))} "
                       f"(similarity {nt.get('similarity')}, {text(str(nt.get('method')))})")
        if pair.get("student_solved"):
            st.caption(":orange[The student already solves this one: it teaches less.]")

        d = review.diverge(pair.get("chosen") or "", pair.get("rejected") or "")
        height = box_height(pair.get("chosen"), pair.get("rejected"))
        left, right = st.columns(2)
        with left:
            reasoning_column("Chosen", d["chosen"], d["answers"][0], d["answers"][1], height)
        with right:
            reasoning_column("Rejected", d["rejected"], d["answers"][1], d["answers"][0], height)

        if pair.get("failed_gate"):
            st.caption(f":orange[This pair failed the **{label_text(pair['failed_gate'])}** gate: accepting it overrides the gate "
                       "(recorded in its history).]")
        a1, a2, a3 = st.columns([1, 3, 1])
        confirming = st.session_state.get("review-override") == pair["id"]
        if a1.button("Accept", type="primary", key="review-accept", width="stretch",
                     disabled=pair["status"] == "accepted" or confirming):
            if pair.get("failed_gate"):  # a failed gate is never overridden by the same click as a pass
                st.session_state["review-override"] = pair["id"]
                rerun_panel()
            elif run_action(lambda: review.accept(store, [pair["id"]])):
                decided(f"Accepted {pair['id']}.")
        if confirming:
            st.warning(f"Accept {label_text(pair['id'])} although it failed the {label_text(pair['failed_gate'])} "
                       "gate? The override is recorded in its history.")
            y, n, _ = st.columns([2, 1, 3])
            if y.button("Yes, accept despite the failed gate", key="review-override-yes", type="primary"):
                st.session_state.pop("review-override", None)
                if run_action(lambda: review.accept(store, [pair["id"]])):
                    decided(f"Accepted {pair['id']} (gate {pair['failed_gate']} overridden).")  # decided() escapes
            if n.button("Cancel", key="review-override-no"):
                st.session_state.pop("review-override", None)
                rerun_panel()
        reason = a2.text_input("Reason to reject", key=f"review-reason-{pair['id']}",
                               placeholder="e.g. 정답이 둘, 지문과 무관한 선지", label_visibility="collapsed")
        if a3.button("Reject", key="review-reject", width="stretch"):
            if run_action(lambda: review.reject(store, pair["id"], reason)):
                decided(f"Rejected {pair['id']}.")
        if pair["status"] != "pending" and st.button("Back to pending", key="review-reset"):
            if run_action(lambda: review.reset(store, pair["id"])):
                decided(f"{pair['id']} is pending again.")

        with st.expander("Edit (question, choices, answer, either reasoning)"):
            with st.form(f"review-edit-{pair['id']}-{pair['version']}"):
                passage = st.text_area("Passage", pair.get("passage") or "", height=120)
                question = st.text_input("Question", pair.get("question") or "")
                extra = st.text_area("<보기>", pair.get("extra") or "", height=80)
                choices = [st.text_input(f"Choice {choice_label(i)}", ch, key=f"edit-choice-{pair['id']}-{i}")
                           for i, ch in enumerate((pair["choices"] + [""] * 5)[:5], 1)]
                answer = st.number_input("Answer", 1, 5, int(pair.get("answer") or 1))
                e1, e2 = st.columns(2)
                chosen = e1.text_area("Chosen reasoning", pair.get("chosen") or "", height=240)
                rejected = e2.text_area("Rejected reasoning", pair.get("rejected") or "", height=240)
                why = st.text_input("Why (kept in the history)")
                if st.form_submit_button("Save edit and re-run gates"):
                    with st.spinner("Saving and re-running the gates (an edited question is re-solved once)…"):
                        out = run_action(lambda: review.edit(store, pair["id"], {
                            "passage": passage, "question": question, "extra": extra, "choices": choices,
                            "answer": answer, "chosen": chosen, "rejected": rejected}, reason=why or None))
                    if out:
                        verdict = "passes every gate" if out["passed"] else f"fails {out['failed_gate']}"
                        st.session_state["review-cur"] = pair["id"]
                        st.session_state["review-said"] = (
                            f"Saved version {out['version']} ({', '.join(out['changed']) or 'no change'}); {verdict}"
                            + (f" — {out['note']}" if out.get("note") else "") + ".")
                        rerun_panel()

        with st.expander("Seed question, structure, golden and failed paths (provenance)"):
            prov = review.provenance(store, pair["id"])
            mr = prov["mining_run"] or {}
            frozen = ", ".join(f"{x['set']} #{x['idx']}" for x in prov["sets"])
            st.caption(f"Seed {text(pair['pool'])}/{text(pair['seed_qid'])} · mining run {text(pair['mining_run'])}"
                       + (f" ({text(mr.get('teacher'))} vs {text(mr.get('student'))})" if mr else "")
                       + (f" · frozen in {text(frozen)}" if frozen else "")
                       + (f" · blueprint generation `{prov['generation']['cache_key'][:12]}` by "
                          f"{text(prov['generation']['model'])}" if prov["generation"] else ""))
            if prov["seed"]:
                show_question(prov["seed"], highlight={prov["seed"]["answer"]: "정답"} if prov["seed"]["answer"] else None)
            if prov["structure"] and prov["structure"].get("structure"):
                st.markdown("**Structure**")
                st.json(prov["structure"]["structure"])
            g1, g2 = st.columns(2)
            for col, title, gen in ((g1, "Golden path (teacher)", prov["golden"]),
                                    (g2, "Failed path (student)", prov["failed"])):
                with col:
                    st.markdown(f"**{title}**" + (f" · {text(gen['model'])}" if gen else ""))
                    with st.container(border=True, height=box_height(gen and gen.get("response"))):
                        st.markdown(text(gen["response"]) if gen and gen.get("response") else "_not stored_")
            if prov["siblings"]:
                st.markdown(f"**Other pairs from this seed** ({len(prov['siblings'])})")
                for sib in prov["siblings"]:
                    label = label_text(f"{sib['id']} · {sib['status']} · {sib.get('question') or ''}", 70)
                    if st.button(label, key=f"review-sib-{sib['id']}"):
                        if sib["id"] in ids:
                            st.session_state["review-cur"] = sib["id"]
                            rerun_panel()
                        else:
                            st.info("That pair is outside the current filters (or another run): widen them.")

        with st.expander("History"):
            st.dataframe([{"version": h["version"], "action": h["action"], "reason": h["reason"],
                           "when": str(h["changed_at"])[:19]} for h in review.history(store, pair["id"])],
                         hide_index=True, width="stretch")

    review_panel()

# ---- preference sets ------------------------------------------------------------------------------
st.divider()
st.subheader("Preference sets")
st.caption("A frozen, named set with a content hash: what training reads. The prompt is the solve prompt "
           "(system + user messages); the chat template is applied by training.")
sets = ps.list_sets(store)
if sets:
    st.dataframe([{"name": s["name"], "pairs": s["pairs"], "source": s["source"], "hash": s["hash"][:12],
                   "created": str(s["created_at"])[:19]} for s in sets], hide_index=True, width="stretch")
else:
    st.caption("No preference sets yet.")

t_freeze, t_import, t_export = st.tabs(["Freeze", "Import", "Export"])
with t_freeze:
    if not run_id:
        st.caption("Freezing needs an augment run with accepted pairs.")
    else:
        # The step's config class builds the form (DESIGN.md §4); replacing is an action, not part of the config.
        replace = st.checkbox("Replace a set of this name that holds other content", key="freeze-replace")
        cfg = config_form(ps.FreezeConfig, "freeze", choices={"run": [r["run"] for r in runs]},
                          defaults={"name": f"{run_id}-v1", "run": run_id}, submit="Freeze the accepted pairs",
                          columns=2)
        if cfg:
            s = run_action(lambda: ps.freeze(store, cfg.name.strip(), cfg.run, replace=replace))
            if s:
                flash(f"{s['name']!r} already holds these {plural(s['pairs'], 'pair')}." if s["already"] else
                      f"Froze {plural(s['pairs'], 'pair')} as {s['name']!r} (hash {s['hash'][:12]}).")
                st.rerun()
with t_import:
    with st.form("import"):
        upload = st.file_uploader("TRL JSONL, CSV, Parquet or JSON", type=["jsonl", "csv", "parquet", "json"])
        source = st.text_input("…or a path (file or datasets folder) or a Hub dataset id",
                               placeholder="Hyunwoo98/balanced_df_orpo")
        i1, i2 = st.columns(2)
        iname = i1.text_input("Set name")
        split = i2.text_input("Hub split", "train")
        mapping_text = st.text_area("Column mapping (FIELD=COLUMN per line: prompt, chosen, rejected, subject)", "",
                                    height=80)
        isystem = st.text_input("System text for string prompts (empty: none; `solve`: the solve prompt's system part)",
                                "", key="import-system")
        ireplace = st.checkbox("Replace a set of this name that holds other content", key="import-replace")
        if st.form_submit_button("Import", type="primary"):
            lines = [line for line in mapping_text.splitlines() if line.strip()]

            def do_import():
                mapping = parse_mapping(lines, example="prompt=question")  # a bad line is refused in words
                if upload is not None:
                    with tempfile.TemporaryDirectory() as tmp:
                        path = Path(tmp) / Path(upload.name).name
                        path.write_bytes(upload.getvalue())
                        return ps.import_pairs(store, path, iname.strip(), mapping=mapping, replace=ireplace,
                                               system=isystem or None)
                return ps.import_pairs(store, source.strip(), iname.strip(), mapping=mapping, split=split or None,
                                       replace=ireplace, system=isystem or None)

            s = run_action(do_import)
            if s:
                flash(f"{s['name']!r} already holds these {plural(s['pairs'], 'pair')}." if s["already"] else
                      f"Imported {plural(s['pairs'], 'pair')} as {s['name']!r} (hash {s['hash'][:12]}).")
                st.rerun()
with t_export:
    if not sets:
        st.caption("Nothing to export yet.")
    else:
        names = [s["name"] for s in sets]
        x1, x2 = st.columns(2)
        xname = x1.selectbox("Set", names, key="export-set")
        fmt = x2.selectbox("Format", list(ps.FORMATS), key="export-format",
                           format_func={"trl": "TRL preference JSONL", "hf": "Hugging Face datasets folder",
                                        "csv": "CSV (spreadsheets)"}.get)
        chosen_set = next(s for s in sets if s["name"] == xname)
        run_ref = chosen_set["detail"].get("run")
        if run_ref:
            try:
                made_by(get_run(store, run_ref))
            except NotFound:  # a set stored before run records: no line
                pass
        out = st.text_input("Write to", str(ps.default_export_path(xname, fmt)), key=f"export-out-{xname}-{fmt}")
        if st.button("Export", key="export-go"):
            r = run_action(lambda: ps.export(store, xname, fmt, out))
            if r:
                st.success(text(f"Wrote {plural(r['pairs'], 'pair')} to {r['out']}."))
                if fmt != "hf":
                    st.download_button("Download", Path(r["out"]).read_bytes(), file_name=Path(r["out"]).name,
                                       key="export-download")
        with st.expander("First pair of this set"):
            first = run_action(lambda: ps.get_pairs(store, xname)[:1])
            if first:
                st.code(json.dumps(ps.trl_records(store, xname)[0], ensure_ascii=False, indent=1)[:4000],
                        language="json")
