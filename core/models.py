"""The model registry: named models (provider, model id, base URL, params, adapter) in the store.

Keys are never stored: a model records only the NAME of the environment variable (or Streamlit
secret) that holds its key, `api_key_env`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from core import config, providers
from core.errors import CoreError, NotFound
from core.providers.base import GenParams

if TYPE_CHECKING:
    from core.store import Store

DEFAULT_KEY_ENV = {"gemini": "GEMINI_API_KEY", "openai": None}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ModelParams(GenParams):
    """Per-model settings: generation defaults (GenParams) plus how to call the backend."""

    model_config = ConfigDict(extra="forbid")

    api_key_env: str | None = Field(None, description="name of the variable holding the key (never the key)")
    timeout_s: float = Field(120, gt=0, description="per-request timeout")
    max_retries: int = Field(5, ge=0, description="retries on 429, 5xx and timeouts")
    retry_base_s: float = Field(1.0, ge=0, description="first backoff delay; doubles each retry, with jitter")
    max_backoff_s: float = Field(60.0, ge=0, le=3600, description="longest wait before a retry, a server's "
                                 "Retry-After included (a longer Retry-After is cut to this)")
    breaker_failures: int = Field(5, ge=1, le=1000, description="circuit breaker: after this many connection "
                                  "failures or timeouts in a row the run pauses this model")
    max_rate_limit_wait_s: float = Field(120.0, ge=0, le=86400, description="circuit breaker for rate limits: "
                                         "a model that answers only 429 for this many seconds is paused")
    concurrency: int = Field(16, ge=1, le=1024, description="requests in flight (remote providers)")
    rpm: float | None = Field(None, gt=0, description="requests per minute limit")
    tpm: float | None = Field(None, gt=0, description="tokens per minute limit")
    price_input_per_m: float | None = Field(None, ge=0, description="USD per 1M input tokens")
    price_output_per_m: float | None = Field(None, ge=0, description="USD per 1M output tokens")
    batch_size: int = Field(8, ge=1, description="prompts per generate call (local provider)")
    load_in_4bit: bool = Field(False, description="bitsandbytes 4-bit on CUDA (local provider)")
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="vllm provider: GPUs one model is spread over")
    batch: bool = Field(False, description="Gemini: send through the Batch API (half price, answers within 24 h; "
                        "a stopped or killed run re-attaches to the same batch)")
    batch_poll_s: float = Field(30.0, gt=0, le=3600, description="Batch API: seconds between state checks")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.fullmatch(v):
            raise ValueError("must be a variable NAME such as GEMINI_API_KEY, not the key itself")
        return v

    def gen_defaults(self) -> GenParams:
        return GenParams(**{k: getattr(self, k) for k in GenParams.model_fields})


@dataclass
class Model:
    name: str
    provider: str
    model_id: str
    base_url: str | None = None
    params: ModelParams = field(default_factory=ModelParams)
    adapter: str | None = None
    description: str | None = None
    created_at: Any = None

    @property
    def key_env(self) -> str | None:
        return self.params.api_key_env or DEFAULT_KEY_ENV.get(self.provider)

    def api_key(self) -> str | None:
        return config.secret(self.key_env) if self.key_env else None

    def public(self) -> dict[str, Any]:
        """What lists and pages show: no key, only whether its variable is set."""
        return {"name": self.name, "provider": self.provider, "model_id": self.model_id,
                "base_url": self.base_url, "params": self.params.model_dump(exclude_unset=True),
                "adapter": self.adapter, "description": self.description, "key_env": self.key_env,
                "key_set": bool(self.api_key()) if self.key_env else None,
                "created_at": str(self.created_at) if self.created_at else None}


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
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CoreError(f"bad --param {item!r}", hint="write KEY=VALUE, e.g. --param temperature=0.7")
        value = value.strip()
        if value[:1] in "{[":
            try:
                params[key.strip()] = json.loads(value)
                continue
            except ValueError:
                raise CoreError(f"--param {key} is not valid JSON") from None
        params[key.strip()] = value
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


TEST_TIMEOUT_S = 15.0  # `models test`: one attempt, at most this long
TEST_MESSAGES = [{"role": "user", "content": "1 더하기 1은 얼마입니까? 숫자 하나로만 답하세요."}]


TEST_MAX_TOKENS = 256


def test_model(store: Store, name: str) -> dict[str, Any]:
    """One real call, bypassing the cache (it is a connectivity check) but stored like any other.

    Returns {"ok", "text", "error", "finish_reason", "latency_s"}; `error` is in plain words.
    """
    from core import engine  # the engine imports this module

    model = get_model(store, name)
    # A connectivity check answers fast: one attempt, a short timeout (a down or hanging server
    # says so in seconds, not after the model's full retry policy).
    quick = model.params.model_copy(update={"max_retries": 0,
                                            "timeout_s": min(model.params.timeout_s, TEST_TIMEOUT_S)})
    model = dataclasses.replace(model, params=quick)
    req = engine.Request(TEST_MESSAGES, prompt_hash="models.test", task="test")
    try:
        # The model's own max_tokens (a test must not make a slow local model write 512 tokens); a short
        # cap only when it has none.
        limit = {} if model.params.max_tokens else {"max_tokens": TEST_MAX_TOKENS}
        run = engine.run(store, model, [req], params=limit, refresh=True)
    except CoreError as exc:
        return {"ok": False, "text": None, "error": str(exc), "finish_reason": None, "latency_s": None}
    row = run.rows[0] or {}
    error = row.get("error")
    return {"ok": error is None, "text": row.get("response"), "error": error,
            "finish_reason": row.get("finish_reason"), "latency_s": row.get("latency_s")}


test_model.__test__ = False  # a product function, not a pytest test, even when imported into one
