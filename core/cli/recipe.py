"""`recipe`: run whole rounds headless from one TOML file (run, show, push).

`recipe run FILE [--bundle DIR] [--json]` runs every round as a job of this process (each step its own
job inside it): progress on stderr, Ctrl-C or SIGTERM stops after storing what is in flight (exit
130), and the same command resumes; run again once finished, it sends nothing and trains nothing.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from core.cli import add_noun, print_json, store_of
from core.cli.options import exit_if_cancelled, run_job

recipe_app = typer.Typer(no_args_is_help=True, help="Recipes: every round of the method from one TOML file.")
add_noun(recipe_app, "recipe")

ROUND_KEYS = ("round", "student", "mining_run", "hard_negatives", "augment_run", "pairs", "pairs_set", "set",
              "set_pairs", "train_run", "tuned_model", "eval", "overlap", "on_policy")


@recipe_app.command("run")
def run(ctx: typer.Context, file: Path = typer.Argument(..., help="recipe TOML file (see recipes/)"),
        bundle: Path = typer.Option(None, "--bundle", help="write the bundle here (default: workspace bundles/NAME)"),
        as_json: bool = typer.Option(False, "--json", help="print the rounds as JSON on stdout")) -> None:
    """Run every round of a recipe (resumes a stopped run; a finished one sends nothing)."""
    from core import recipe, recipe_run

    config = recipe.load(file)
    store = store_of(ctx)
    # A step that fails ends the recipe with one Error line; its traceback stays in `jobs show`.
    logging.getLogger("core.jobs").addHandler(logging.NullHandler())
    for w in recipe.warnings(config):
        typer.echo(f"Warning: {w}", err=True)

    def event(line: str) -> None:
        sys.stderr.write(f"\r{line}\n")

    job = run_job(store, recipe_run.start_job(store, config, bundle, on_event=event))
    exit_if_cancelled(job)
    summary = job["result"] or {}
    if as_json:
        print_json({"recipe": summary.get("recipe"), "run": summary.get("run"),
                    "rounds": [{k: r.get(k) for k in ROUND_KEYS} for r in summary.get("rounds", [])],
                    "stopped": summary.get("stopped"), "result_round": summary.get("result_round"),
                    "requests_sent": summary.get("requests_sent"), "bundle": summary.get("bundle"),
                    "state": summary.get("state")})
        return
    for r in summary.get("rounds", []):
        e = r.get("eval")
        typer.echo(f"round {r['round']}: mined with {r['student']} → {r.get('hard_negatives')} hard negatives, "
                   f"{r.get('pairs') or 0} pairs" + (f"; accuracy {e['base_accuracy']:.1%} → {e['tuned_accuracy']:.1%} "
                                                      f"(McNemar p {e['mcnemar_p']:.3g})" if e else ""))
    if summary.get("stopped"):
        typer.echo(f"stopped: {summary['stopped']}")
    typer.echo(f"{summary.get('requests_sent', 0)} request(s) sent" +
               (f"; bundle {summary['bundle']}" if summary.get("bundle") else ""))


@recipe_app.command("show")
def show(ctx: typer.Context, file: Path = typer.Argument(..., help="recipe TOML file"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """What a recipe would do and what can be estimated of its cost (sends and stores nothing)."""
    from core import recipe, recipe_run

    config = recipe.load(file)
    store = store_of(ctx)
    p = recipe.plan(store, config)
    last = recipe_run.latest(store, config)
    p["last_run"] = {"run": last["id"], "state": last["state"], "rounds_done": len((last["summary"] or {}).get(
        "rounds", []))} if last else None
    if as_json:
        print_json(p)
        return
    typer.echo(f"recipe {p['name']} (hash {p['hash']}): {p['rounds']} round(s), stop when: "
               f"{', '.join(p['stop']) or 'never (all rounds)'}")
    for s in p["steps"]:
        typer.echo(f"  round {s['round']}: mine {s['mine']}\n    augment ({s['augment']}), review {s['review']}, "
                   f"freeze {s['freeze']} (rejected: {s['rejected']})\n    overlap {s['overlap']}\n"
                   f"    train {s['train']}\n    evaluate {s['eval']}")
    typer.echo("  train settings: " + ", ".join(f"{k}={v}" for k, v in p["train"].items()))
    for w in p["warnings"]:
        typer.echo(f"Warning: {w}")
    if p.get("estimate"):
        e = p["estimate"]
        for who, x in e["round_1_mining"].items():
            cost = "cost unknown" if x["est_cost_usd"] is None else f"≈ ${x['est_cost_usd']:.4f}"
            typer.echo(f"  round 1 mining, {who}: {x['to_send']} to send, {x['cached']} cached, {cost}")
        typer.echo(f"  augment: up to {e['augment_requests_max_per_round']} teacher requests per round; "
                   f"evaluation: {e['eval_requests_per_round']} per round; later rounds: "
                   f"{e['student_requests_per_later_round']} tuned-student requests each ({e['note']})")
    elif p.get("estimate_note"):
        typer.echo(f"  estimate: {p['estimate_note']}")
    if p["last_run"]:
        typer.echo(f"  last run {p['last_run']['run']}: {p['last_run']['state']}, "
                   f"{p['last_run']['rounds_done']} round(s) recorded")


@recipe_app.command("push")
def push(folder: Path = typer.Argument(..., help="a bundle folder (recipe run --bundle DIR)"),
         repo: str = typer.Option(..., "--repo", help="Hub repo id, e.g. you/csat-orpo"),
         public: bool = typer.Option(False, "--public", help="create the repo public (default private)")) -> None:
    """Upload a bundle to the Hugging Face Hub (needs HF_TOKEN or `huggingface-cli login`)."""
    from core import recipe_bundle

    typer.echo(f"Uploaded: {recipe_bundle.push(folder, repo, private=not public)}")
