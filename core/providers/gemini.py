"""Gemini through google-genai. The SDK's own retries are switched off (HttpRetryOptions(attempts=1))
so that the engine's retry policy is the only one in force and every attempt is counted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from google import genai
from google.genai import errors, types

from core.answers import is_truncated
from core.errors import CoreError
from core.providers.base import (
    GenParams,
    Provider,
    ProviderError,
    Result,
    parse_retry_after,
    status_error,
    transport_errors,
    transport_message,
)

if TYPE_CHECKING:
    from core.providers.base import Model

_ROLES = {"user": "user", "assistant": "model", "model": "model"}
INLINE_LIMIT = 20_000_000  # bytes: the Batch API takes inlined requests up to 20 MB, a file beyond


def _retry_after(exc: errors.APIError) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return parse_retry_after(headers.get("retry-after"))


class GeminiProvider(Provider):
    unsupported: ClassVar[frozenset[str]] = frozenset({"prefill"})
    name: ClassVar[str] = "gemini"
    batch_api: ClassVar[bool] = True

    def __init__(self, model: Model):
        super().__init__(model)
        key = model.api_key()
        if not key:
            raise CoreError(f"no API key for model {model.name!r}",
                            hint=f"set {model.key_env} in the environment or .streamlit/secrets.toml")
        options = types.HttpOptions(
            api_version="v1beta",  # pinned: thinking and JSON-schema output live there, whatever the SDK default
            timeout=int(model.params.timeout_s * 1000) + 1000,  # ms; the engine's timeout fires first
            retry_options=types.HttpRetryOptions(attempts=1),
            **({"base_url": model.base_url} if model.base_url else {}),
        )
        self.client = genai.Client(api_key=key, http_options=options)

    def config(self, params: GenParams, system: str | None) -> types.GenerateContentConfig:
        cfg: dict[str, Any] = {"system_instruction": system, "temperature": params.temperature,
                               "top_p": params.top_p, "max_output_tokens": params.max_tokens}
        if params.thinking is not None or params.thinking_budget is not None:
            budget = params.thinking_budget
            if budget is None:
                budget = -1 if params.thinking else 0  # -1: the model decides how long to think
            cfg["thinking_config"] = types.ThinkingConfig(thinking_budget=budget, include_thoughts=budget != 0)
        if params.json_schema is not None:
            cfg["response_mime_type"] = "application/json"
            cfg["response_json_schema"] = params.json_schema
        return types.GenerateContentConfig(**{k: v for k, v in cfg.items() if v is not None})

    def request(self, messages: list[dict[str, str]],
                params: GenParams) -> tuple[list[types.Content], types.GenerateContentConfig]:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
        contents = [types.Content(role=_ROLES.get(m["role"], "user"), parts=[types.Part(text=m["content"])])
                    for m in messages if m["role"] != "system"]
        return contents, self.config(params, system)

    async def generate(self, messages: list[dict[str, str]], params: GenParams) -> Result:
        contents, config = self.request(messages, params)
        async with _calling():
            resp = await self.client.aio.models.generate_content(
                model=self.model.model_id, contents=contents, config=config)
        return self.result(resp)

    # The Batch API (half price, answers within 24 h): core/batchapi.py drives these three.

    @staticmethod
    def rest_request(contents: list[types.Content], config: types.GenerateContentConfig) -> dict[str, Any]:
        """A GenerateContentRequest as the REST JSON a batch input file line holds."""
        req: dict[str, Any] = {"contents": [c.model_dump(mode="json", by_alias=True, exclude_none=True)
                                            for c in contents]}
        if config.system_instruction:
            req["systemInstruction"] = {"parts": [{"text": config.system_instruction}]}
        gen = config.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"system_instruction"})
        if gen:
            req["generationConfig"] = gen
        return req

    async def batch_create(self, items: list[tuple[str, list[dict[str, str]]]], params: GenParams,
                           display_name: str) -> str:
        """Submit (key, messages) pairs as one batch: inlined under 20 MB, else an uploaded JSONL
        file; returns the batch's name (batches/…)."""
        built = [(key, *self.request(messages, params)) for key, messages in items]
        lines = [json.dumps({"key": key, "request": self.rest_request(c, cfg)}, ensure_ascii=False)
                 for key, c, cfg in built]
        async with _calling():
            if sum(len(x.encode()) for x in lines) < INLINE_LIMIT:
                src: Any = [types.InlinedRequest(contents=c, config=cfg, metadata={"key": key})
                            for key, c, cfg in built]
            else:
                src = await self._upload("\n".join(lines) + "\n", display_name)
            job = await self.client.aio.batches.create(model=self.model.model_id, src=src,
                                                       config=types.CreateBatchJobConfig(display_name=display_name))
        return job.name

    async def _upload(self, text: str, display_name: str) -> str:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as f:
            f.write(text)
        try:
            up = await self.client.aio.files.upload(
                file=f.name, config=types.UploadFileConfig(mime_type="jsonl", display_name=display_name))
        finally:
            Path(f.name).unlink(missing_ok=True)
        return up.name

    async def batch_get(self, name: str, keys: list[str]) -> tuple[str, dict[str, Result] | None]:
        """(state, replies by key once it succeeded). state: pending, running, succeeded, failed,
        cancelled or expired. keys: the batch's keys in order (for replies that carry no key)."""
        async with _calling():
            job = await self.client.aio.batches.get(name=name)
            state = str(getattr(job.state, "value", job.state) or "").removeprefix("JOB_STATE_").lower()
            if state != "succeeded":
                return state, None
            dest = job.dest
            out: dict[str, Result] = {}
            if dest is not None and dest.inlined_responses:
                for i, r in enumerate(dest.inlined_responses):
                    key = (r.metadata or {}).get("key") or (keys[i] if i < len(keys) else None)
                    out[key] = self._reply(r.response, r.error)
            elif dest is not None and dest.file_name:
                data = await self.client.aio.files.download(file=dest.file_name)
                for line in data.decode("utf-8").splitlines():
                    try:
                        obj = json.loads(line)
                        resp = (types.GenerateContentResponse.model_validate(obj["response"])
                                if obj.get("response") else None)
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn line: its request is sent again by the next run
                    out[obj.get("key")] = self._reply(resp, obj.get("error"))
        return state, out

    def _reply(self, resp: types.GenerateContentResponse | None, error: Any) -> Result:
        if resp is None or error:
            detail = error.get("message", error) if isinstance(error, dict) else error
            return Result(error=f"batch: {str(detail or 'no response')[:300]}")
        try:
            return self.result(resp)
        except ProviderError as exc:
            return Result(error=exc.message)

    @staticmethod
    def result(resp: types.GenerateContentResponse) -> Result:
        usage = resp.usage_metadata
        tokens_in = usage.prompt_token_count if usage else None
        tokens_out = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else None
        if not resp.candidates:
            feedback = resp.prompt_feedback
            if not (feedback and feedback.block_reason):
                raise ProviderError("malformed response: no candidates and no block reason")
            # The prompt itself was blocked: recorded as the finish reason, not swallowed.
            reason = getattr(feedback.block_reason, "value", feedback.block_reason)
            return Result(finish_reason=f"PROMPT_BLOCKED:{reason}", input_tokens=tokens_in,
                          output_tokens=tokens_out)
        cand = resp.candidates[0]
        parts = (cand.content.parts if cand.content else None) or []
        if not parts and cand.finish_reason is None:
            raise ProviderError("malformed response: a candidate with neither content nor finish reason")
        text = "".join(p.text for p in parts if p.text and not p.thought)
        thoughts = "".join(p.text for p in parts if p.text and p.thought) or None
        finish = getattr(cand.finish_reason, "value", cand.finish_reason)
        return Result(text=text, reasoning=thoughts, finish_reason=finish, truncated=is_truncated(finish),
                      input_tokens=tokens_in, output_tokens=tokens_out)

    async def aclose(self) -> None:
        await self.client.aio.aclose()


@contextlib.asynccontextmanager
async def _calling() -> AsyncIterator[None]:
    """SDK failures as the engine's ProviderErrors (retryable, fatal, connection)."""
    try:
        yield
    except errors.APIError as exc:
        raise status_error(exc.code or 0, exc.message or str(exc), _retry_after(exc)) from None
    except transport_errors() as exc:
        raise ProviderError(transport_message(exc), retryable=True, connection=True,
                            hint="is the API reachable? check the network or base URL") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise ProviderError(f"malformed response: {exc}") from None
