"""`pairs`: review generated pairs (list, show, accept, reject, edit, history) and preference sets
(freeze, import, sets, export, delete)."""

from __future__ import annotations

from pathlib import Path

import typer

from core.cli import add_noun, print_json, store_of
from core.errors import CoreError
from core.steps import plural
from core.steps.augment import gates
from core.steps.data.datasets import parse_mapping
from core.steps.review import preference_sets, review

pairs_app = typer.Typer(no_args_is_help=True,
                        help="Review preference pairs and manage frozen preference sets (what training reads).")
add_noun(pairs_app, "review")

LIST_KEYS = ("id", "run_id", "seed_qid", "idx", "subject", "target", "status", "failed_gate", "passed", "answer",
             "question", "version", "review_reason")


def _brief(p: dict) -> dict:
    out = {k: p.get(k) for k in LIST_KEYS}
    out["run"] = out.pop("run_id")
    out["seed"] = out.pop("seed_qid")
    return out


def _line(p: dict) -> str:
    gate = "passed" if p["passed"] else f"failed {p['failed_gate']}" if p.get("failed_gate") else "not gated"
    q = (p.get("question") or "").replace("\n", " ")
    return f"{p['id']}  [{p['status']}] {gate} · seed {p['seed_qid']} · {p.get('subject') or '-'} · {q[:60]}"


@pairs_app.command("list")
def list_(ctx: typer.Context, run: str = typer.Option(None, "--run", help="augment run id (candidates.run_id)"),
          status: str = typer.Option(None, "--status", help="pending | accepted | rejected"),
          subject: str = typer.Option(None, "--subject"),
          gate: str = typer.Option(None, "--gate", help="passed | failed | a gate name (first gate failed)"),
          seed: str = typer.Option(None, "--seed", help="seed question id"),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """List candidate pairs with their review status and gate result."""
    rows = review.list_pairs(store_of(ctx), run=run, status=status, subject=subject, gate=gate, seed=seed)
    if as_json:
        print_json([_brief(p) for p in rows])
        return
    if not rows:
        typer.echo("No pairs match.")
    for p in rows:
        typer.echo(_line(p))


@pairs_app.command("runs")
def runs(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Augment runs holding candidates, with review counts."""
    rows = review.runs(store_of(ctx))
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("No candidates yet: run augment first.")
    for r in rows:
        typer.echo(f"{r['run']} (mining {r['mining_run']}): {r['candidates']} candidates, {r['passed']} passing, "
                   f"{r['accepted']} accepted, {r['rejected']} rejected, {r['pending']} pending")


@pairs_app.command("show")
def show(ctx: typer.Context, pair_id: str = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """One pair with its gates, history and provenance (seed, mining run, generations)."""
    store = store_of(ctx)
    prov = review.provenance(store, pair_id)
    hist = review.history(store, pair_id)
    if as_json:
        print_json(prov | {"history": hist})
        return
    from core.render import question_text

    p = prov["pair"]
    typer.echo(f"── {p['id']} · run {p['run_id']} · {p['status']} · version {p['version']}")
    typer.echo(f"seed {p['pool']}/{p['seed_qid']} · mining run {p['mining_run']} · target {p.get('target') or '-'}")
    typer.echo(question_text(gates.as_question(p)) + f"\n정답 {p['answer']}\n")
    typer.echo("── chosen\n" + (p.get("chosen") or "") + "\n\n── rejected\n" + (p.get("rejected") or "") + "\n")
    for gate, res in (p.get("gates") or {}).items():
        ok = res.get("ok") if isinstance(res, dict) else res
        reason = res.get("reason") if isinstance(res, dict) else ""
        typer.echo(f"  {'✓' if ok else '✗'} {gate}" + (f": {reason}" if reason else ""))
    typer.echo("history: " + "; ".join(f"v{h['version']} {h['action']}" + (f" ({h['reason']})" if h['reason'] else "")
                                        for h in hist))
    if prov["siblings"]:
        typer.echo("same seed: " + ", ".join(s["id"] for s in prov["siblings"]))


@pairs_app.command("accept")
def accept(ctx: typer.Context, ids: list[str] = typer.Argument(None, metavar="[ID]..."),
           run: str = typer.Option(None, "--run", help="with --passing: the augment run"),
           passing: bool = typer.Option(False, "--passing", help="accept every pending pair that passed every gate"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Accept pairs by id, or every pending pair of a run that passed every gate (--run RUN --passing)."""
    store = store_of(ctx)
    if passing:
        if not run or ids:
            raise CoreError("--passing needs --run RUN and no ids", hint="pairs accept --run RUN --passing")
        done = review.accept_passing(store, run)
    else:
        if not ids:
            raise CoreError("give pair ids, or --run RUN --passing", hint="list them with: pairs list --run RUN")
        done = [p["id"] for p in review.accept(store, ids)]
    if as_json:
        print_json({"accepted": len(done), "ids": done} | ({"counts": review.counts(store, run)} if run else {}))
        return
    typer.echo(f"Accepted {plural(len(done), 'pair')}." + (f" {review.counts(store, run)['accepted']} accepted in {run}."
                                                    if run else ""))


@pairs_app.command("reject")
def reject(ctx: typer.Context, pair_id: str = typer.Argument(..., metavar="ID"),
           reason: str = typer.Option(..., "--reason", help="why (kept in the pair's history)")) -> None:
    """Reject a pair with a reason."""
    p = review.reject(store_of(ctx), pair_id, reason)
    typer.echo(f"Rejected {p['id']} (version {p['version']}).")


@pairs_app.command("reset")
def reset(ctx: typer.Context, pair_id: str = typer.Argument(..., metavar="ID"),
          reason: str = typer.Option(None, "--reason")) -> None:
    """Put a decided pair back to pending (the decision stays in its history)."""
    p = review.reset(store_of(ctx), pair_id, reason)
    typer.echo(f"{p['id']} is pending again (version {p['version']}).")


@pairs_app.command("edit")
def edit(ctx: typer.Context, pair_id: str = typer.Argument(..., metavar="ID"),
         question: str = typer.Option(None, "--question"), passage: str = typer.Option(None, "--passage"),
         extra: str = typer.Option(None, "--extra", help="<보기>"),
         choice: list[str] = typer.Option(None, "--choice", help="all five choices, in order (repeat 5 times)"),
         answer: int = typer.Option(None, "--answer", help="1–5"),
         chosen: str = typer.Option(None, "--chosen", help="chosen reasoning (@FILE reads a file)"),
         rejected: str = typer.Option(None, "--rejected", help="rejected reasoning (@FILE reads a file)"),
         reason: str = typer.Option(None, "--reason", help="why (kept in the history)"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """Edit a pair: a new version is recorded and its gates re-run."""
    changes = {k: v for k, v in (("question", question), ("passage", passage), ("extra", extra),
                                 ("answer", answer), ("chosen", chosen), ("rejected", rejected)) if v is not None}
    for key in ("chosen", "rejected"):
        if isinstance(changes.get(key), str) and changes[key].startswith("@"):
            changes[key] = Path(changes[key][1:]).read_text(encoding="utf-8")
    if choice:
        changes["choices"] = choice
    if not changes:
        raise CoreError("nothing to edit", hint="pass --question, --choice ×5, --answer, --chosen, --rejected ...")
    p = review.edit(store_of(ctx), pair_id, changes, reason)
    if as_json:
        print_json({"id": p["id"], "version": p["version"], "changed": p["changed"], "status": p["status"],
                    "failed_gate": p["failed_gate"], "passed": p["passed"], "note": p["note"]})
        return
    typer.echo(f"{p['id']}: version {p['version']}, changed {', '.join(p['changed']) or 'nothing'}; "
               + ("passes every gate" if p["passed"] else f"fails {p['failed_gate']}" if p["failed_gate"] else "not gated")
               + (f" ({p['note']})" if p.get("note") else ""))


@pairs_app.command("history")
def history(ctx: typer.Context, pair_id: str = typer.Argument(..., metavar="ID"),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Every version of a pair: created, edited, accepted, rejected, reset."""
    rows = review.history(store_of(ctx), pair_id)
    if as_json:
        print_json(rows)
        return
    for h in rows:
        typer.echo(f"v{h['version']} {h['action']} {h['changed_at']}" + (f": {h['reason']}" if h["reason"] else ""))


@pairs_app.command("freeze")
def freeze(ctx: typer.Context, name: str = typer.Argument(..., help="name of the preference set"),
           run: str = typer.Option(..., "--run", help="augment run whose accepted pairs are frozen"),
           replace: bool = typer.Option(False, "--replace", help="overwrite a set of this name with other content"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Freeze a run's accepted pairs as a named, content-hashed set."""
    s = preference_sets.freeze(store_of(ctx), name, run, replace=replace)
    _report_set(s, as_json, "Froze")


def _report_set(s: dict, as_json: bool, verb: str) -> None:
    if as_json:
        print_json({k: s[k] for k in ("name", "pairs", "source", "hash")} | {"already": s.get("already", False)})
        return
    if s.get("already"):
        typer.echo(f"{s['name']!r} already holds these {plural(s['pairs'], 'pair')} (hash {s['hash'][:12]}); nothing changed.")
    else:
        typer.echo(f"{verb} {plural(s['pairs'], 'pair')} as {s['name']!r} (hash {s['hash'][:12]}, {s['source']}).")


@pairs_app.command("import")
def import_(ctx: typer.Context, file: str = typer.Argument(..., help="TRL JSONL, CSV, Parquet, JSON, datasets folder, "
                                                                   "or a Hub dataset id (owner/name) when online"),
            name: str = typer.Option(..., "--name", help="name of the preference set"),
            mapping: list[str] = typer.Option(None, "--map", help="FIELD=COLUMN (prompt, chosen, rejected, subject)"),
            split: str = typer.Option(None, "--split", help="Hub split (default train)"),
            system: str = typer.Option(None, "--system", help="wrap string prompts as [system, user] with this "
                                                              "system text; 'solve' = the solve prompt's system part"),
            replace: bool = typer.Option(False, "--replace", help="overwrite a set of this name with other content"),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Import preference pairs (all or nothing: bad rows are listed with their line numbers)."""
    s = preference_sets.import_pairs(store_of(ctx), file, name, mapping=_mapping(mapping), split=split,
                                     replace=replace, system=system)
    _report_set(s, as_json, "Imported")


def _mapping(items: list[str] | None) -> dict[str, str]:
    return parse_mapping(items, example="prompt=question")


@pairs_app.command("sets")
def sets(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List preference sets: name, pairs, source, hash."""
    rows = preference_sets.list_sets(store_of(ctx))
    if as_json:
        print_json([{k: r[k] for k in ("name", "pairs", "source", "hash")} for r in rows])
        return
    if not rows:
        typer.echo("No preference sets yet: freeze a review or import one.")
    for r in rows:
        typer.echo(f"{r['name']}: {plural(r['pairs'], 'pair')} · {r['source']} · {r['hash'][:12]}")


@pairs_app.command("export")
def export(ctx: typer.Context, name: str = typer.Argument(..., help="preference set"),
           fmt: str = typer.Option("trl", "--format", help="trl | hf | csv"),
           out: Path = typer.Option(..., "--out", help="file (trl, csv) or new folder (hf)"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Export a set as TRL preference JSONL, a `datasets` folder or CSV."""
    r = preference_sets.export(store_of(ctx), name, fmt, out)
    if as_json:
        print_json(r)
        return
    typer.echo(f"Wrote {plural(r['pairs'], 'pair')} of {name!r} to {r['out']} ({fmt}).")


@pairs_app.command("delete-set")
def delete_set(ctx: typer.Context, name: str, yes: bool = typer.Option(False, "--yes", help="do not ask")) -> None:
    """Delete a preference set (its pairs; reviewed candidates stay)."""
    store = store_of(ctx)
    preference_sets.get_set(store, name)
    if not yes and not typer.confirm(f"Delete preference set {name!r}?"):
        raise typer.Abort()
    typer.echo(f"Deleted {name!r} ({preference_sets.delete_set(store, name)} pairs).")
