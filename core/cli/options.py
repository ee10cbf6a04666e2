"""CLI options generated from a step's config class, and the one way a long step runs from the CLI.

`config_command` turns each field of a `StepConfig` into a typer option (`--field-name`, help from
the field's description, bounds checked by pydantic), so the CLI and the page form never type the
fields twice. `run_job` runs a step as a background job of this process with a tqdm bar on stderr
(stdout stays for --json); Ctrl-C or SIGTERM cancels, waits for what is in flight to be stored,
and exits 130; the same command resumes.
"""

from __future__ import annotations

import inspect
import signal
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import typer

from core.config import key_values
from core.errors import CoreError
from core.runs import StepConfig


def _option_type(annotation: Any) -> tuple[Any, str]:
    """(type typer understands, extra help). Literals become str with their choices listed."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _option_type(args[0])
    if origin is Literal:
        return str, " [" + "|".join(map(str, typing.get_args(annotation))) + "]"
    if origin in (list, tuple) and args:
        return list[args[0]], " (repeat the option)"
    if origin is dict:
        return list[str], " (KEY=VALUE, repeat the option)"
    return annotation, ""


def config_params(cls: type[StepConfig], exclude: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    params = []
    for name, field in cls.model_fields.items():
        if name in exclude:
            continue
        typ, extra = _option_type(field.annotation)
        default = None if field.is_required() else field.default
        if isinstance(default, (list, dict)) or field.default_factory is not None:
            default = None  # let the class fill its own default
        flag = "--" + name.replace("_", "-")
        decls = [flag] if typ is not bool else [f"{flag}/--no-{name.replace('_', '-')}"]
        help_ = (field.description or "") + extra + (" (required)" if field.is_required() else "")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        default=typer.Option(default, *decls, help=help_, show_default=default is not None),
                                        annotation=typ | None if typ is not bool else bool))
    return params


def build_config(cls: type[StepConfig], values: dict[str, Any]) -> StepConfig:
    """Validate CLI values (None = not given: the class default applies)."""
    given = {k: v for k, v in values.items() if v is not None and k in cls.model_fields}
    for k, v in list(given.items()):
        if typing.get_origin(cls.model_fields[k].annotation) is dict or (
                dict in [typing.get_origin(a) for a in typing.get_args(cls.model_fields[k].annotation)]):
            given[k] = dict(_pair(item, k) for item in v)
        elif isinstance(v, list) and not v:
            given.pop(k)
    missing = [k for k, f in cls.model_fields.items() if f.is_required() and k not in given]
    if missing:
        raise CoreError(f"missing {', '.join('--' + m.replace('_', '-') for m in missing)}",
                        hint="add --help to see every setting")
    return cls.parse(given)


def _pair(item: str, field: str) -> tuple[str, str]:
    return next(iter(key_values([item], f"--{field.replace('_', '-')}", "KEY=VALUE").items()))


def config_command(cls: type[StepConfig], fn: Callable[..., Any], extra: list[inspect.Parameter] | None = None,
                   exclude: tuple[str, ...] = ()) -> Callable[..., Any]:
    """Give fn(ctx, config, **extra) a signature typer reads: ctx, one option per field, extra options.

    Missing required fields are reported by build_config (so subcommand groups can share a callback).
    """
    extra = extra or []
    extra_names = {p.name for p in extra}

    def command(ctx: typer.Context, **kwargs: Any) -> Any:
        if ctx.invoked_subcommand:
            return None
        config = build_config(cls, {k: v for k, v in kwargs.items() if k not in extra_names})
        return fn(ctx, config, **{k: v for k, v in kwargs.items() if k in extra_names})

    ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    command.__signature__ = inspect.Signature([ctx_param, *config_params(cls, exclude), *extra])
    command.__doc__ = fn.__doc__
    command.__name__ = fn.__name__
    return command


def json_option() -> inspect.Parameter:
    return inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY,
                             default=typer.Option(False, "--json", help="print the run's summary as JSON on stdout"),
                             annotation=bool)


def run_job(store: Any, job_id: str, as_json: bool = False) -> dict[str, Any]:
    """Follow a background job with a progress bar on stderr until it ends; returns its row.

    Ctrl-C / SIGTERM: ask the job to stop, wait until what is in flight is stored, exit 130.
    A failed job raises its message as a CoreError (exit 1); with as_json its state, job id and
    reason are printed on stdout first, so a script reading --json learns why.
    """
    from tqdm import tqdm

    from core import jobs

    stop = {"asked": False}

    def on_signal(signum: int, _frame: Any) -> None:
        if stop["asked"]:
            raise KeyboardInterrupt  # a second Ctrl-C: quit now
        stop["asked"] = True
        jobs.cancel(job_id)  # first: once the line below is out, nothing new is sent
        sys.stderr.write("\nCancelling: storing what is in flight (Ctrl-C again to quit now)…\n")
        sys.stderr.flush()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = tqdm(total=0, file=sys.stderr, unit="req", dynamic_ncols=True, disable=None, leave=False)
    try:
        while not jobs.wait(job_id, 0.5):
            job = jobs.get_job(store, job_id)
            if job and job["total"]:
                bar.total = job["total"]
                bar.n = job["done"] or 0
                bar.set_postfix_str(f"{job['errors'] or 0} err" + (f", {job['message']}" if job.get("message") else ""))
                bar.refresh()
    finally:
        bar.close()
        for s, h in previous.items():
            signal.signal(s, h)
    job = jobs.get_job(store, job_id)
    if job["state"] == "failed":
        if as_json:
            from core.cli import print_json

            print_json({"state": "failed", "job": job_id, "kind": job["kind"], "error": job["message"]})
        raise CoreError(job["message"] or f"the {job['kind']} job failed",
                        hint=f"details: python -m core jobs show {job_id}")
    if stop["asked"] or job["state"] == "cancelled":
        job["state"] = "cancelled"
    return job


def exit_if_cancelled(job: dict[str, Any]) -> None:
    if job["state"] == "cancelled":
        typer.echo("Cancelled; finished work is stored: run the same command again to resume.", err=True)
        raise typer.Exit(130)
