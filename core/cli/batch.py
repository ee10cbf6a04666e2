"""`batch write` / `batch read`: a step's requests as an OpenAI Batch JSONL file, answered by an
outside engine (OpenAI's Batch API, `vllm run-batch`), and its replies read back into the store."""

from __future__ import annotations

import typer

from core.cli import add_noun, print_json, store_of

batch_app = typer.Typer(no_args_is_help=True,
                        help="Batch files (OpenAI Batch JSONL) and Ray: a step's requests answered outside the live loop, stored back.")
add_noun(batch_app, "batch")


@batch_app.command("write")
def write(ctx: typer.Context,
          dataset: str = typer.Option(..., "--dataset", help="dataset the step runs on (mine: the pool)"),
          model: str = typer.Option(..., "--model", help="registered model that will answer (one per file)"),
          out: str = typer.Option(..., "--out", help="batch input file to write (.jsonl)"),
          step: str = typer.Option("solve", "--step", help="solve | mine (mine: questions with a gold answer)"),
          samples: int = typer.Option(1, "--samples", help="replies per question (the step's K)"),
          temperature: float = typer.Option(None, "--temperature", help="the step's temperature (default: the model's)"),
          limit: int = typer.Option(None, "--limit", help="only the first N questions (solve)"),
          as_json: bool = typer.Option(False, "--json", help="print the counts as JSON")) -> None:
    """Write every request the step would send and the store lacks (custom_id = cache key)."""
    from core import batchfile
    from core.models import get_model

    store = store_of(ctx)
    reqs = batchfile.step_requests(store, step, dataset, samples, limit)
    params = None if temperature is None else {"temperature": temperature}
    s = batchfile.write(store, get_model(store, model), reqs, out, params)
    if as_json:
        print_json(s)
    else:
        typer.echo(f"Wrote {s['written']} request(s) to {s['file']} ({s['cached']} of {s['requests']} already "
                   f"stored). Answer it with the OpenAI Batch API or `vllm run-batch -i {s['file']} -o OUT "
                   f"--model …`, then `batch read OUT --model {model}`.")


@batch_app.command("read")
def read(ctx: typer.Context, file: str = typer.Argument(..., help="batch output file (.jsonl)"),
         model: str = typer.Option(..., "--model", help="the model the batch file was written for"),
         as_json: bool = typer.Option(False, "--json", help="print the counts as JSON")) -> None:
    """Store each reply as a live call would; the step then sends nothing for them."""
    from core import batchfile
    from core.errors import CoreError
    from core.models import get_model

    store = store_of(ctx)
    s = batchfile.read(store, get_model(store, model), file)
    if as_json:
        print_json(s)
    else:
        cost = "" if not s["cost_usd"] else f", ≈ ${s['cost_usd']:.4f} at the batch price"
        typer.echo(f"Read {s['lines']} line(s): {s['recorded']} reply(ies) stored ({s['answered']} with an answer), "
                   f"{s['already_stored']} already stored; {s['input_tokens']:,} input + "
                   f"{s['output_tokens']:,} output tokens{cost}.")
    for p in s["problems"][:50]:
        typer.echo(f"  {p}", err=True)
    if len(s["problems"]) > 50:
        typer.echo(f"  … and {len(s['problems']) - 50} more", err=True)
    if s["problems"]:
        raise CoreError(f"{len(s['problems'])} line(s) of {file} were not stored (the other replies are)",
                        hint="write the batch again: only the requests still missing are written")


@batch_app.command("ray")
def ray_run(ctx: typer.Context,
            dataset: str = typer.Option(..., "--dataset", help="dataset the step runs on (mine: the pool)"),
            model: list[str] = typer.Option(..., "--model", help="registered model (provider openai or vllm); "
                                            "repeat it for mining's teacher and student"),
            step: str = typer.Option("solve", "--step", help="solve | mine (mine: questions with a gold answer)"),
            samples: int = typer.Option(1, "--samples", help="replies per question (the step's K)"),
            temperature: float = typer.Option(None, "--temperature", help="the step's temperature (default: the model's)"),
            limit: int = typer.Option(None, "--limit", help="only the first N questions (solve)"),
            address: str = typer.Option(None, "--address", help="Ray cluster: auto | ray://HEAD:10001 | IP:PORT "
                                        "(default: a local Ray in this process)"),
            concurrency: int = typer.Option(1, "--concurrency", min=1, help="Ray workers: HTTP clients, or vLLM replicas"),
            batch_size: int = typer.Option(16, "--batch-size", min=1, help="rows per Ray Data batch"),
            as_json: bool = typer.Option(False, "--json", help="print the counts as JSON")) -> None:
    """Answer the step's missing requests over a Ray cluster (Ray Data LLM) and store the replies;
    the step then sends nothing for them. Needs requirements-ray.txt."""
    from tqdm import tqdm

    from core import batchfile, raymine
    from core.errors import CoreError
    from core.models import get_model

    store = store_of(ctx)
    reqs = batchfile.step_requests(store, step, dataset, samples, limit)
    params = None if temperature is None else {"temperature": temperature}
    models = [get_model(store, m) for m in model]  # every name checked before Ray starts
    raymine.connect(address)
    out = []
    for m in models:
        with tqdm(desc=m.name, unit="reply", file=typer.get_text_stream("stderr"), leave=False) as bar:
            def tick(done: int, total: int, bar: tqdm = bar) -> None:
                bar.total = total
                bar.update(done - bar.n)
            s = raymine.run(store, m, reqs, params, concurrency=concurrency, batch_size=batch_size, progress=tick)
        out.append(s)
        if not as_json:
            typer.echo(f"{m.name}: {s['recorded']} reply(ies) stored ({s['answered']} with an answer) of "
                       f"{s['sent']} sent; {s['cached']} of {s['requests']} were already stored; "
                       f"{s['input_tokens']:,} input + {s['output_tokens']:,} output tokens.")
        for p in s["problems"][:50]:
            typer.echo(f"  {p}", err=True)
    if as_json:
        print_json(out if len(out) > 1 else out[0])
    bad = sum(len(s["problems"]) for s in out)
    if bad:
        raise CoreError(f"{bad} reply(ies) were errors and were not stored (the others are)",
                        hint="run the same command again: only the requests still missing are sent")
