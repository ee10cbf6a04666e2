"""The one provider interface: validated generation parameters in, a Result out.

A provider only talks to its backend. Concurrency, rate limits, retries, timeouts, caching and
storage belong to core/engine.py, so every backend gets the same policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from core.errors import CoreError
from core.secrets import redact

if TYPE_CHECKING:
    from core.models import Model


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
