"""`solve`: run a registered model over a dataset, K samples per question. Ctrl-C cancels cleanly;
the same command again resumes from the store."""

from __future__ import annotations

import sys

import typer

from core import jobs
from core import solve as solving
from core.cli import app, print_json, store_of
from core.errors import CoreError


def _human(s: dict, dataset: str, model: str) -> str:
    acc = "n/a (no gold answers)" if s["accuracy"] is None else f"{s['accuracy']:.2%}"
    return (f"{model} on {dataset}: {s['questions']} questions × {s['samples']} sample(s)\n"
            f"  accuracy {acc} ({s['correct']} correct), answered {s['answered']}, "
            f"unparsed {s['unparsed']} (truncated {s['truncated']}), errors {s['errors']}\n"
            f"  sent {s['requests_sent']} request(s), {s['cached']} served from the store")


@app.command("solve")
def solve(ctx: typer.Context, dataset: str = typer.Option(..., "--dataset"),
          model: str = typer.Option(..., "--model"),
          samples: int = typer.Option(1, "--samples", min=1, help="replies per question"),
          temperature: float = typer.Option(None, "--temperature", help="default: the model's"),
          estimate_only: bool = typer.Option(False, "--estimate", help="print what it would send and cost, then stop"),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Solve every question of a dataset with a registered model."""
    store = store_of(ctx)
    est = solving.estimate(store, dataset, model, samples, temperature)
    cost = ("cost unknown: set price_input_per_m / price_output_per_m" if est["est_cost_usd"] is None
            else "no API cost" if est["est_cost_usd"] == 0 else f"~${est['est_cost_usd']:.2f}")
    line = (f"{est['requests']} request(s): {est['cached']} in the store, {est['to_send']} to send "
            f"(~{est['input_tokens']:,} input + ~{est['output_tokens']:,} output tokens, {cost})")
    if estimate_only:
        print_json(est) if as_json else typer.echo(line)
        return
    typer.echo(line, err=True)
    job_id = solving.start_job(store, dataset, model, samples, temperature)
    cancelled = False
    try:
        while not jobs.wait(job_id, 0.5):
            _show_progress(store, job_id)
    except KeyboardInterrupt:
        cancelled = True
        typer.echo("\nCancelling: waiting for requests in flight to be stored (Ctrl-C again to quit now)…",
                   err=True)
        jobs.cancel(job_id)
        jobs.wait(job_id)  # a second Ctrl-C propagates: the CLI prints "Interrupted"
    job = jobs.get_job(store, job_id)
    if job["state"] == "failed":
        raise CoreError(job["message"] or "the solve job failed")
    summary = job["result"]
    print_json(summary) if as_json else typer.echo(_human(summary, dataset, model))
    if cancelled or job["state"] == "cancelled":
        typer.echo("Cancelled; run the same command again to resume (stored replies are not re-sent).", err=True)
        raise typer.Exit(130)


def _show_progress(store, job_id: str) -> None:
    if not sys.stderr.isatty():
        return
    job = jobs.get_job(store, job_id)
    if job and job["total"]:
        eta = f", ~{job['eta_s']:.0f} s left" if job["eta_s"] else ""
        sys.stderr.write(f"\r{job['done']}/{job['total']} done, {job['errors']} error(s){eta}   ")
        sys.stderr.flush()
