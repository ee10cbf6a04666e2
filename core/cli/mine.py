"""`mine`: hard-negative mining (run, list, export). A run is a job like the page's: a progress bar on
stderr, Ctrl-C or SIGTERM stores what finished and exits 130, the same command resumes from the
cache, and `jobs list` shows it (a killed run reads as interrupted in `mine list` and `jobs list`)."""

from __future__ import annotations

from pathlib import Path

import typer

from core.cli import add_noun, print_json, store_of
from core.cli.options import config_command, exit_if_cancelled, json_option, run_job
from core.steps.mine.mining import MiningConfig

mine_app = typer.Typer(help="Hard-negative mining: teacher ✓ / student ✗, both reasoning paths kept.")
add_noun(mine_app, "mine")

SUMMARY_KEYS = ("run", "pool", "teacher", "student", "questions", "hard_negatives", "both_correct", "both_wrong",
                "student_only", "judged_kept", "requests_sent", "cached", "errors", "error_reasons")


def mine(ctx: typer.Context, config: MiningConfig, as_json: bool = False) -> None:
    """Run mining on a pool (or use a subcommand: list, export)."""
    from core.steps.mine import mining

    store = store_of(ctx)
    job = run_job(store, mining.start_job(store, config), as_json)
    exit_if_cancelled(job)
    summary = job["result"]
    if as_json:
        print_json({k: summary[k] for k in SUMMARY_KEYS})
        return
    typer.echo(_line(summary))


mine_app.callback(invoke_without_command=True)(config_command(MiningConfig, mine, extra=[json_option()]))


def _line(s: dict) -> str:
    return (f"run {s['run']}: {s['pool']} ({s['questions']} questions), teacher {s['teacher']} "
            f"{(s.get('teacher_accuracy') or 0):.1%}, student {s['student']} {(s.get('student_accuracy') or 0):.1%}: "
            f"{s['hard_negatives']} hard negatives, {s['both_correct']} both correct "
            f"({s['judged_kept']} kept by the judge), {s['both_wrong']} both wrong, {s['student_only']} student only"
            + (f", {s['no_answer']} without a gold answer (skipped)" if s.get("no_answer") else "")
            + (f", {s['errors']} errored (no outcome, re-sent next run: "
               + "; ".join(f"{n}x {r}" for r, n in (s.get("error_reasons") or {}).items()) + ")"
               if s.get("errors") else "")
            + f"; {s['requests_sent']} requests sent, {s['cached']} cached")


@mine_app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List mining runs (newest first; a run whose process died shows as interrupted)."""
    from core.steps.mine import mining

    runs = mining.list_runs(store_of(ctx))
    if as_json:
        print_json([{k: r.get(k) for k in SUMMARY_KEYS} | {"state": r["state"]} for r in runs])
        return
    if not runs:
        typer.echo("No mining runs yet.")
    for r in runs:
        typer.echo(_line(r) if r["state"] == "done" else f"run {r['run']}: {r['state']}")


@mine_app.command("export")
def export(ctx: typer.Context, run: str, out: Path = typer.Option(..., "--out")) -> None:
    """Write a run's hard negatives (with both reasoning paths) as JSONL."""
    from core.steps.mine import mining_export

    n = mining_export.export_hard_negatives(store_of(ctx), run, out)
    typer.echo(f"Wrote {n} hard negatives to {out}.")
