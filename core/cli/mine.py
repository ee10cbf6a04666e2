"""`mine`: hard-negative mining (run, list, export)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from core import mining
from core.cli import app, print_json, store_of
from core.errors import CoreError

mine_app = typer.Typer(help="Hard-negative mining: teacher ✓ / student ✗, both reasoning paths kept.")
app.add_typer(mine_app, name="mine")

SUMMARY_KEYS = ("run", "pool", "teacher", "student", "questions", "hard_negatives", "both_correct", "both_wrong",
                "student_only", "judged_kept", "requests_sent", "cached")


@mine_app.callback(invoke_without_command=True)
def mine(ctx: typer.Context, pool: str = typer.Option(None, "--pool", help="dataset to mine"),
         teacher: str = typer.Option(None, "--teacher", help="registered teacher model"),
         student: str = typer.Option(None, "--student", help="registered student model"),
         samples: int = typer.Option(1, "--samples", help="K samples per model and question"),
         rule: str = typer.Option("majority", "--rule", help="majority | hard (student wrong in ≥ m of K)"),
         min_wrong: int = typer.Option(1, "--min-wrong", help="m for --rule hard"),
         temperature: float = typer.Option(None, "--temperature"),
         judge: str = typer.Option(None, "--judge", help="model that judges both-correct pairs"),
         classifier: str = typer.Option(None, "--classifier", help="model that labels unknown subjects"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """Run mining on a pool (or use a subcommand: list, export)."""
    if ctx.invoked_subcommand:
        return
    if not (pool and teacher and student):
        raise CoreError("mine needs --pool, --teacher and --student", hint="or: mine list / mine export RUN --out FILE")
    try:
        config = mining.MiningConfig(pool=pool, teacher=teacher, student=student, samples=samples, rule=rule,
                                     min_wrong=min_wrong, temperature=temperature, judge=judge, classifier=classifier)
    except ValueError as exc:
        raise CoreError(f"bad mining settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C: stop sending, keep what finished
    try:
        summary = mining.mine(store_of(ctx), config, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    if summary.get("state") == "cancelled":
        typer.echo("Cancelled; finished replies are cached, run the same command again to resume.", err=True)
        raise typer.Exit(130)
    if as_json:
        print_json({k: summary[k] for k in SUMMARY_KEYS})
        return
    typer.echo(_line(summary))


def _line(s: dict) -> str:
    return (f"run {s['run']}: {s['pool']} ({s['questions']} questions), teacher {s['teacher']} "
            f"{(s.get('teacher_accuracy') or 0):.1%}, student {s['student']} {(s.get('student_accuracy') or 0):.1%}: "
            f"{s['hard_negatives']} hard negatives, {s['both_correct']} both correct "
            f"({s['judged_kept']} kept by the judge), {s['both_wrong']} both wrong, {s['student_only']} student only"
            + (f", {s['no_answer']} without a gold answer (skipped)" if s.get("no_answer") else "")
            + f"; {s['requests_sent']} requests sent, {s['cached']} cached")


@mine_app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List mining runs (newest first)."""
    runs = [r for r in mining.list_runs(store_of(ctx))]
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
    n = mining.export_hard_negatives(store_of(ctx), run, out)
    typer.echo(f"Wrote {n} hard negatives to {out}.")
