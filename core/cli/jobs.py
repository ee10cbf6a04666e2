"""`jobs`: what ran in the background (the dashboard's jobs, as stored)."""

from __future__ import annotations

import typer

from core import jobs
from core.cli import add_noun, print_json, store_of
from core.errors import NotFound

jobs_app = typer.Typer(no_args_is_help=True, help="Background jobs: state, progress, errors.")
add_noun(jobs_app, "jobs")


@jobs_app.command("list")
def list_(ctx: typer.Context, kind: str = typer.Option(None, "--kind", help="solve | mine | eval"),
          limit: int = typer.Option(20, "--limit"), as_json: bool = typer.Option(False, "--json")) -> None:
    """List recent jobs (a job left running by a process that died shows as interrupted)."""
    rows = jobs.list_jobs(store_of(ctx), kind, limit)
    if as_json:
        print_json(rows)
        return
    for j in rows:
        typer.echo(f"{j['id']} {j['kind']:6} {j['state']:11} {j['done']}/{j['total']} {j['label']}"
                   + (f" — {j['message']}" if j["message"] else ""))


@jobs_app.command("show")
def show(ctx: typer.Context, job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """One job in full: settings, progress, result, and the traceback of a failed job."""
    job = jobs.get_job(store_of(ctx), job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}", hint="list them with: python -m core jobs list")
    if as_json:
        print_json(job)
        return
    typer.echo(f"{job['id']} {job['kind']} {job['state']}: {job['label']}")
    typer.echo(f"  progress {job['done']}/{job['total']}, {job['errors']} error(s), "
               f"{(job['input_tokens'] or 0) + (job['output_tokens'] or 0):,} tokens"
               + (f", ${job['est_cost_usd']:.4f}" if job.get("est_cost_usd") is not None else ""))
    typer.echo(f"  started {job['started_at']}, finished {job['finished_at'] or '—'}")
    if job["params"]:
        typer.echo("  settings: " + ", ".join(f"{k}={v}" for k, v in job["params"].items() if v is not None))
    if job["message"]:
        typer.echo(f"  message: {job['message']}")
    if job.get("traceback"):
        typer.echo("  traceback:\n" + "\n".join("    " + ln for ln in job["traceback"].rstrip().splitlines()))
