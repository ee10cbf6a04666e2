"""The one provider interface: validated generation parameters in, a Result out.

A provider only talks to its backend. Concurrency, rate limits, retries, timeouts, caching and
storage belong to core/engine.py, so every backend gets the same policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core import config
from core.errors import CoreError
from core.secrets import redact


class GenParams(BaseModel):
    """What changes a model's output. Unknown fields fail here, before any call is paid for."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2, description="None: the backend's default")
    max_tokens: int | None = Field(None, gt=0, description="output limit, thinking included")
    top_p: float | None = Field(None, gt=0, le=1)
    thinking: bool | None = Field(None, description="None: the model's default")
    thinking_budget: int | None = Field(None, ge=-1, description="Gemini: -1 dynamic, 0 off")
    json_schema: dict[str, Any] | None = Field(None, description="ask for JSON matching this schema")
    prefill: str | None = Field(None, description="local base models: the reply starts with this text "
                                "(e.g. '정답은 '), so a model with no chat template answers instead of rambling")

    def key_dict(self) -> dict[str, Any]:
        # Unset fields are left out so that adding a field later keeps every stored cache key valid.
        return self.model_dump(exclude_none=True)


DEFAULT_KEY_ENV = {"gemini": "GEMINI_API_KEY", "openai": None}
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


@dataclass
class Request:
    messages: list[dict[str, str]]
    prompt_hash: str  # the template's content hash: a changed prompt is a new request
    sample: int = 0
    task: str = "solve"
    dataset: str | None = None
    qid: str | None = None
    n_choices: int | None = None  # set: extract a choice number 1..n_choices from the reply


@dataclass
class Result:
    text: str = ""
    reasoning: str | None = None
    finish_reason: str | None = None
    truncated: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None


class ProviderError(CoreError):
    """A failed call. retryable: 429, 5xx, timeouts. fatal: every further call would fail too
    (bad key, unknown model), so the engine stops sending instead of failing 10,000 times.
    connection: the server could not be reached or did not answer in time (refused, reset, DNS,
    timeout); the engine's circuit breaker counts these, not HTTP errors from a server that is up.
    rate_limited: HTTP 429; the breaker bounds the total time spent waiting on these."""

    def __init__(self, message: str, *, retryable: bool = False, fatal: bool = False,
                 retry_after: float | None = None, hint: str | None = None, connection: bool = False,
                 rate_limited: bool = False):
        super().__init__(message, hint)
        self.rate_limited = rate_limited
        self.retryable = retryable
        self.fatal = fatal
        self.retry_after = retry_after
        self.connection = connection


def status_error(status: int, detail: str, retry_after: float | None = None) -> ProviderError:
    """The engine's view of an HTTP status, shared by the HTTP providers."""
    detail = " ".join(redact(str(detail)).split())[:300]  # redacted before the cut: no half key survives
    if status in (502, 504):  # a proxy that cannot reach the model server: the breaker counts these
        return ProviderError(f"HTTP {status}: {detail}", retryable=True, retry_after=retry_after, connection=True,
                             hint="the gateway cannot reach the model server: is it running?")
    if status == 429:
        return ProviderError(f"HTTP 429: {detail}", retryable=True, retry_after=retry_after, rate_limited=True)
    if status == 408 or status >= 500:
        return ProviderError(f"HTTP {status}: {detail}", retryable=True, retry_after=retry_after)
    if status in (401, 403):
        return ProviderError(f"HTTP {status}: {detail}", fatal=True,
                             hint="check the API key (the variable named by api_key_env) and its access")
    if status == 404:
        return ProviderError(f"HTTP 404: {detail}", fatal=True, hint="check the model id and base URL")
    return ProviderError(f"HTTP {status}: {detail}")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when unreadable.
    The engine caps it (max_backoff_s), so a server asking for an hour cannot stall a job."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds or seconds == float("inf"):  # nan / inf
        return None
    return max(0.0, seconds)


def transport_errors() -> tuple[type[BaseException], ...]:
    """Connection and timeout errors of httpx and its fork httpx2 (SDKs use either): retryable."""
    import httpx

    found: list[type[BaseException]] = [httpx.TransportError]
    try:
        import httpx2

        found.append(httpx2.TransportError)
    except ImportError:
        pass
    return tuple(found)


def transport_message(exc: BaseException) -> str:
    """A connection-level failure in words (httpx errors often carry an empty message)."""
    detail = " ".join(redact(str(exc)).split())[:200]
    return f"connection failed ({type(exc).__name__}{': ' + detail if detail else ''})"


class Provider:
    """Base class. Remote providers implement `generate`; batched (local) ones `generate_batch`."""

    name: ClassVar[str] = ""
    batched: ClassVar[bool] = False  # True: the engine hands over batches instead of concurrent calls
    batch_api: ClassVar[bool] = False  # True: batch_create / batch_get (a provider Batch API, core/batchapi.py)
    unsupported: ClassVar[frozenset[str]] = frozenset()  # GenParams fields this backend cannot honour

    def __init__(self, model: Model):
        self.model = model

    @classmethod
    def check(cls, params: GenParams) -> None:
        """Refuse parameters the backend would silently ignore, before anything is sent."""
        bad = sorted(k for k in params.key_dict() if k in cls.unsupported)
        if bad:
            raise CoreError(f"the {cls.name} provider does not support {', '.join(bad)}",
                            hint="leave it unset for this model")

    @classmethod
    def output_params(cls, model: Model) -> dict[str, Any]:
        """Model settings besides GenParams that change outputs (they go into the cache key)."""
        return {}

    async def generate(self, messages: list[dict[str, str]], params: GenParams) -> Result:
        return (await self.generate_batch([messages], params))[0]

    async def generate_batch(self, batch: list[list[dict[str, str]]], params: GenParams) -> list[Result]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections; called once per engine run."""
