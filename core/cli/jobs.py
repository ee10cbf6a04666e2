"""`jobs`: what ran in the background (the dashboard's jobs, as stored)."""

from __future__ import annotations

import typer

from core import jobs
from core.cli import app, print_json, store_of

jobs_app = typer.Typer(no_args_is_help=True, help="Background jobs: state, progress, errors.")
app.add_typer(jobs_app, name="jobs")


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
