"""The model registry: named models (provider, model id, base URL, params, adapter) in the store.

Keys are never stored: a model records only the NAME of the environment variable (or Streamlit
secret) that holds its key, `api_key_env`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core import providers
from core.config import key_values
from core.errors import CoreError, NotFound
from core.providers.base import Model, ModelParams

if TYPE_CHECKING:
    from core.store import Store

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}")


def key_problem(model: Model) -> str | None:
    """Why `model` cannot be called for lack of a key, in words; None when it can.

    Gemini always needs its key; an OpenAI-compatible model needs one for the hosted API (no base
    URL) or when a key variable was named for it; a local server (vLLM, Ollama) accepts any key.
    """
    needs = model.provider == "gemini" or (model.provider == "openai" and not model.base_url) \
        or bool(model.params.api_key_env)
    if needs and model.key_env and not model.api_key():
        return f"{model.name} has no API key: {model.key_env} is not set"
    return None


def parse_param_items(items: list[str] | None) -> dict[str, Any]:
    """KEY=VALUE pairs; a VALUE starting with { or [ is JSON (json_schema=...)."""
    params: dict[str, Any] = {}
    for key, value in key_values(items, "--param", "temperature=0.7").items():
        if value[:1] in "{[":
            try:
                params[key] = json.loads(value)
                continue
            except ValueError:
                raise CoreError(f"--param {key} is not valid JSON") from None
        params[key] = value
    return params


def parse_params(params: dict[str, Any] | None) -> ModelParams:
    """Validate params (CLI strings are coerced: "0.7" -> 0.7, "true" -> True); name the bad one."""
    params = dict(params or {})
    for key in params:
        if "key" in key.lower() and key != "api_key_env":
            raise CoreError(f"keys are never stored (param {key!r})",
                            hint="put the key in an environment variable and pass api_key_env=ITS_NAME")
    try:
        return ModelParams(**params)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "params"
        known = ", ".join(ModelParams.model_fields)
        hint = f"known params: {known}" if err["type"] == "extra_forbidden" else None
        raise CoreError(f"bad param {field}: {err['msg']}", hint=hint) from None


def _from_row(row: dict[str, Any]) -> Model:
    return Model(row["name"], row["provider"], row["model_id"], row["base_url"],
                 ModelParams(**json.loads(row["params"] or "{}")), row["adapter"], row["description"],
                 row["created_at"])


def add_model(store: Store, name: str, provider: str, model_id: str, *, base_url: str | None = None,
              params: dict[str, Any] | None = None, adapter: str | None = None,
              description: str | None = None, replace: bool = False) -> Model:
    """Register a model after checking everything that can be checked without a call."""
    if not _NAME.fullmatch(name or ""):
        raise CoreError(f"invalid model name {name!r}", hint="letters, digits and . _ - : @ /")
    cls = providers.provider_class(provider)
    if not model_id or not model_id.strip():
        raise CoreError("a model needs a model id", hint="e.g. gemini-2.5-flash or Qwen/Qwen3-14B-AWQ")
    if adapter and provider != "local":
        raise CoreError("an adapter path only applies to the local provider",
                        hint="on vLLM/SGLang serve the LoRA and use its name as the model id")
    if adapter and not Path(adapter).exists():
        raise CoreError(f"adapter folder {adapter} does not exist", hint="pass the folder a training run wrote")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise CoreError(f"base URL {base_url!r} must start with http:// or https://",
                        hint="e.g. http://localhost:8000/v1 for vLLM")
    parsed = parse_params(params)
    model = Model(name, provider, model_id.strip(), base_url or None, parsed, adapter or None, description)
    cls.check(parsed.gen_defaults())
    if parsed.batch and not cls.batch_api:
        raise CoreError(f"the {provider} provider has no batch API (batch=true)",
                        hint="for OpenAI or vLLM use `batch write` / `batch read` (OpenAI Batch JSONL files)")
    exists = store.scalar("SELECT count(*) FROM models WHERE name = ?", [name])
    if exists and not replace:
        raise CoreError(f"a model named {name!r} already exists", hint="choose another name, or delete it first")
    with store.transaction():
        store.execute("DELETE FROM models WHERE name = ?", [name])
        store.execute(
            "INSERT INTO models (name, provider, model_id, base_url, params, adapter, description) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [name, provider, model.model_id, model.base_url, json.dumps(parsed.model_dump(exclude_unset=True)),
             model.adapter, description],
        )
    return get_model(store, name)


def get_model(store: Store, name: str) -> Model:
    rows = store.rows("SELECT * FROM models WHERE name = ?", [name])
    if not rows:
        names = [r["name"] for r in store.rows("SELECT name FROM models ORDER BY name")]
        raise NotFound(f"no model named {name!r}", hint=f"models: {', '.join(names) or 'none yet'}; "
                       "add one with `models add`")
    return _from_row(rows[0])


def list_models(store: Store) -> list[dict[str, Any]]:
    return [_from_row(r).public() for r in store.rows("SELECT * FROM models ORDER BY created_at, name")]


def delete_plan(store: Store, name: str):
    """What deleting the model would remove (its replies, engine predictions, solve/evaluate runs)
    and what stops it (mining or training runs that used it): core/cascade.py."""
    from core import cascade

    get_model(store, name)
    return cascade.plan(store, "model", name)


def delete_model(store: Store, name: str):
    """Remove a model and what was derived from it only; refuses when a mining or training run used it."""
    from core import cascade

    get_model(store, name)
    return cascade.delete(store, "model", name)
