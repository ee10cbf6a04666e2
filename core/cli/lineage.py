"""`lineage`: where a tuned model, a pair or a question came from, and where it went (core/lineage.py).

    lineage model NAME                          model → training run → set → pairs → seeds → mining runs
    lineage pair ID | SET#IDX                   pair → candidate → seed, mining item, mining run; → sets, models
    lineage question DATASET QID [--model M]    a pool question forward (mined, pairs, sets, models); with
                                                --model, a test question → the nearest pairs of the set M was
                                                trained on → their seeds → their mining run (as `visualise flips`)
"""

from __future__ import annotations

from typing import Any

import typer

from core import embeddings, lineage
from core.cli import add_noun, print_json, store_of
from core.cli.options import exit_if_cancelled, run_job

lineage_app = typer.Typer(no_args_is_help=True,
                          help="Lineage: where a tuned model, a pair or a question came from, and where it went.")
add_noun(lineage_app, "lineage")

_JSON = typer.Option(False, "--json", help="print the walk as JSON on stdout")


def _mining(m: dict[str, Any] | None) -> str:
    if not m:
        return "—"
    if m.get("missing"):
        return f"{m['run']} (not in this store)"
    return f"{m['run']} (pool {m['pool']}, teacher {m['teacher']} vs student {m['student']}, {m['state']})"


def _item(item: dict[str, Any] | None) -> str:
    if not item:
        return "no mining item"
    kept = ", kept" if item.get("kept") else ""
    return f"{item['outcome']}{kept}"


@lineage_app.command("model")
def model(ctx: typer.Context, name: str = typer.Argument(..., help="a tuned model (or the server model serving it)"),
          as_json: bool = _JSON) -> None:
    """A tuned model back to its pool questions: training run, frozen set, pairs, seeds, mining runs."""
    w = lineage.of_model(store_of(ctx), name)
    if as_json:
        print_json(w)
        return
    run, s = w["training_run"], w["set"]
    served = f" (serves {run['model']})" if run.get("served_as") else ""
    typer.echo(f"model {name}{served} ← training run {run['run']} ({run['state']}, base {run['base']})")
    typer.echo(f"  ← set {s['name']}: {s['pairs']} pairs, hash {s['hash'][:12]}, source {s['source']}; "
               f"{w['traced']} traced to their seed, {w['untraced']} not")
    typer.echo(f"  ← augment run {', '.join(w['augment_runs']) or '—'}")
    for m in w["mining_runs"]:
        typer.echo(f"  ← mining run {_mining(m)}")
    for p in w["pairs"]:
        c = p["candidate"]
        origin = (f" ← seed {c['seed']['pool']}/{c['seed']['qid']} ({_item(c['mining_item'])}) · mining {c['mining_run']}"
                  if c else " (imported: no reviewed candidate)")
        typer.echo(f"    #{p['idx']} {p['pair_id'] or '—'} ({p['subject'] or '-'}) {p['start']}{origin}")


@lineage_app.command("pair")
def pair(ctx: typer.Context, ref: str = typer.Argument(..., help="a pair's id (pairs list) or SET#IDX"),
         as_json: bool = _JSON) -> None:
    """One pair both ways: candidate, seed, mining item and run (back); sets and tuned models (forward)."""
    w = lineage.of_pair(store_of(ctx), ref)
    if as_json:
        print_json(w)
        return
    c = w["candidate"]
    if c is None:
        typer.echo(f"pair {ref}: {w['pair']['start']} — {w['note']}")
    else:
        typer.echo(f"pair {c['pair_id']} ({c['status']}, augment run {c['augment_run']}, {c['subject'] or '-'}): "
                   f"{c['start']}")
        seed = w["seed"]
        typer.echo(f"  ← seed {seed['pool']}/{seed['qid']} ({seed['subject'] or '-'}): {seed['start']}")
        typer.echo(f"  ← mining item: {_item(w['mining_item'])}; mining run {_mining(w['mining_run'])}")
    for s in w["sets"]:
        typer.echo(f"  → in set {s['set']} #{s['idx']}")
    for r in w["models"]:
        typer.echo(f"  → trained: run {r['run']} on {r['set']} ({r['state']}) → model {r['model'] or '—'}")


@lineage_app.command("question")
def question(ctx: typer.Context, dataset: str = typer.Argument(..., help="the question's dataset"),
             qid: str = typer.Argument(..., help="its id"),
             model_: str = typer.Option(None, "--model", help="tuned model or evaluation label: list the nearest "
                                        "pairs of the set it was trained on"),
             base: str = typer.Option(None, "--base", help="evaluation label before (says fixed / broken)"),
             pairs: str = typer.Option(None, "--pairs", help="preference set to search (default: --model's lineage)"),
             k: int = typer.Option(3, "--k", min=1, max=20, help="nearest pairs listed"),
             embedder: str = typer.Option(embeddings.DEFAULT, "--embedder", help="embedder name or folder"),
             as_json: bool = _JSON) -> None:
    """A question's lineage: forward from a pool question; with --model, a test question to its nearest
    training pairs, their seeds and mining run."""
    from core.steps.visualise import mapping

    store = store_of(ctx)
    w: dict[str, Any] = {"question": lineage.of_question(store, dataset, qid)}
    if model_:
        target = pairs or lineage.require_training_set(store, model_, dataset, option="--pairs")
        for name in dict.fromkeys([dataset, target]):
            if mapping.needs_embedding(store, [name], embedder):  # embed as a job: a progress bar, Ctrl-C keeps it
                job = run_job(store, mapping.start_job(store, mapping.EmbedConfig(dataset=name, embedder=embedder)))
                exit_if_cancelled(job)
        w["nearest"] = mapping.why(store, dataset, qid, model_, base, target, k, embedder)
    if as_json:
        print_json(w)
        return
    q = w["question"]
    typer.echo(f"{q['dataset']}/{q['qid']} ({q['subject'] or '-'}): {q['start']}")
    for m in q["mined"]:
        typer.echo(f"  mined in run {m['run']}: {m['outcome']}{', kept' if m['kept'] else ''}")
    for c in q["candidates"]:
        held = ", ".join(f"{s['set']}#{s['idx']}" for s in c["sets"]) or "no set"
        typer.echo(f"  → pair {c['pair_id']} ({c['status']}, augment run {c['augment_run']}) in {held}")
    for r in q["models"]:
        typer.echo(f"  → trained: run {r['run']} on {r['set']} → model {r['model'] or '—'}")
    if not (q["mined"] or q["candidates"] or model_):
        typer.echo("  no mining run, pair or model came from it (a test question? add --model TUNED)")
    n = w.get("nearest")
    if n:
        seen = " → ".join(f"{lab}: {res or 'no prediction'}" for lab, res in n["outcome"].items())
        flip = f" ({n['class']})" if n["class"] else ""
        if seen:
            typer.echo(f"  {seen}{flip}")
        via = f", training run {n['training_run']}" if n["training_run"] else ""
        why = "given with --pairs" if pairs else f"what {n['b']} was trained on{via}"
        typer.echo(f"  nearest pairs in {n['pairs']} ({why}; {n['embedder']}):")
        for p in n["neighbours"]:
            typer.echo(f"    {p['similarity']:.3f} pair {p['pair_id'] or '—'} ({n['pairs']}#{p['pair']}): {p['start']}")
            seed = p.get("seed")
            if seed:
                typer.echo(f"          ← seed {seed['pool']}/{seed['qid']}: {seed['start']} · mining run "
                           f"{seed['mining_run']}")
