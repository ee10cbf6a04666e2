"""`augment`: structure extraction, blueprint prompting and gates on a mining run's hard negatives.

`python -m core augment --run MINING_RUN --teacher MODEL [--per-seed N] [--json]` runs as a job with
a progress bar on stderr; Ctrl-C stores what finished and exits 130; the same command resumes and,
once finished, sends nothing new. `augment list` lists runs.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from core.cli import add_noun, print_json, store_of
from core.cli.options import build_config, config_params, exit_if_cancelled, json_option, run_job
from core.errors import CoreError
from core.steps.augment import augment as augmenting
from core.steps.augment.augment import AugmentConfig
from core.steps.augment.gates import GATES

augment_app = typer.Typer(help="Augment: new questions with the same logic as each hard negative, gated.")
add_noun(augment_app, "augment")

SUMMARY_KEYS = ("run", "mining_run", "seeds", "candidates", "passed", "failed", "requests_sent", "cached")


def _human(s: dict[str, Any]) -> str:
    failed = ", ".join(f"{g} {s['failed'][g]}" for g in GATES if s["failed"].get(g))
    return (f"run {s['run']} (mining run {s['mining_run']}): {s['seeds']} seeds → {s['candidates']} candidates, "
            f"{s['passed']} passed every gate" + (f"; failed first at: {failed}" if failed else "")
            + f"\n  sent {s['requests_sent']} request(s), {s['cached']} served from the store")


def augment(ctx: typer.Context, **kwargs: Any) -> None:
    """Run augment on a mining run (or use a subcommand: list)."""
    if ctx.invoked_subcommand:
        return
    as_json = kwargs.pop("as_json")
    kwargs["mining_run"] = kwargs.pop("run")
    if not kwargs["mining_run"]:
        raise CoreError("missing --run", hint="the mining run: the `run` that mine --json prints (mine list)")
    config = build_config(AugmentConfig, kwargs)
    store = store_of(ctx)
    est = augmenting.estimate(store, config)
    cost = f", ≈ ${est['est_cost_usd']:.4f} at most" if est["est_cost_usd"] is not None else ""
    typer.echo(f"{est['seeds']} seeds: up to {est['requests_max']} requests to send{cost}.", err=True)
    job = run_job(store, augmenting.start_job(store, config), as_json)
    summary = job["result"]
    if summary:
        print_json({k: summary[k] for k in SUMMARY_KEYS}) if as_json else typer.echo(_human(summary))
    exit_if_cancelled(job)


_RUN = inspect.Parameter("run", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                         default=typer.Option(None, "--run", help="the mining run (the `run` of mine --json) (required)"))
augment.__signature__ = inspect.Signature([
    inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
    _RUN, *config_params(AugmentConfig, exclude=("mining_run",)), json_option()])
augment_app.callback(invoke_without_command=True)(augment)


@augment_app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List augment runs (newest first)."""
    rows = augmenting.list_runs(store_of(ctx))
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("No augment runs yet.")
    for r in rows:
        typer.echo(f"run {r['run']} ({r['state']}): mining run {r['mining_run']}, teacher {r['teacher']}, "
                   f"{r['seeds']} seeds, {r['candidates']} candidates, {r['passed']} passed")
