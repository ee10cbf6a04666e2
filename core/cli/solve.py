"""`solve`: run a registered model over a dataset, K samples per question, as a job with a progress
bar on stderr. Ctrl-C or SIGTERM stores what finished and exits 130; the same command resumes."""

from __future__ import annotations

import inspect

import typer

from core.cli import app, print_json, store_of
from core.cli.options import config_command, exit_if_cancelled, json_option, run_job
from core.steps.solve import solve as solving
from core.steps.solve.solve import SolveConfig


def _human(s: dict, dataset: str, model: str) -> str:
    acc = "n/a (no gold answers)" if s["accuracy"] is None else f"{s['accuracy']:.2%}"
    return (f"{model} on {dataset}: {s['questions']} questions × {s['samples']} sample(s)\n"
            f"  accuracy {acc} ({s['correct']} correct), answered {s['answered']}, "
            f"unparsed {s['unparsed']} (truncated {s['truncated']}), errors {s['errors']}\n"
            f"  sent {s['requests_sent']} request(s), {s['cached']} served from the store")


def solve(ctx: typer.Context, config: SolveConfig, estimate_only: bool = False, as_json: bool = False) -> None:
    """Solve every question of a dataset with a registered model."""
    store = store_of(ctx)
    est = solving.estimate(store, config.dataset, config.model, config.samples, config.temperature,
                           limit=config.limit)
    if estimate_only:
        print_json(est) if as_json else typer.echo(solving.estimate_text(est))
        return
    typer.echo(solving.estimate_text(est), err=True)
    job = run_job(store, solving.start_job(store, config), as_json)
    summary = job["result"]
    if summary:
        print_json(summary) if as_json else typer.echo(_human(summary, config.dataset, config.model))
    exit_if_cancelled(job)


_ESTIMATE = inspect.Parameter("estimate_only", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                              default=typer.Option(False, "--estimate", help="print what it would send and cost, then stop"))
app.command("solve")(config_command(SolveConfig, solve, extra=[_ESTIMATE, json_option()]))
