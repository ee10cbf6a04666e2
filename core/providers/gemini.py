"""Gemini through google-genai. The SDK's own retries are switched off (HttpRetryOptions(attempts=1))
so that the engine's retry policy is the only one in force and every attempt is counted."""

from __future__ import annotations

import json
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
    from core.models import Model

_ROLES = {"user": "user", "assistant": "model", "model": "model"}


def _retry_after(exc: errors.APIError) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return parse_retry_after(headers.get("retry-after"))


class GeminiProvider(Provider):
    unsupported: ClassVar[frozenset[str]] = frozenset({"prefill"})
    name: ClassVar[str] = "gemini"

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

    async def generate(self, messages: list[dict[str, str]], params: GenParams) -> Result:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
        contents = [types.Content(role=_ROLES.get(m["role"], "user"), parts=[types.Part(text=m["content"])])
                    for m in messages if m["role"] != "system"]
        try:
            resp = await self.client.aio.models.generate_content(
                model=self.model.model_id, contents=contents, config=self.config(params, system))
        except errors.APIError as exc:
            raise status_error(exc.code or 0, exc.message or str(exc), _retry_after(exc)) from None
        except transport_errors() as exc:
            raise ProviderError(transport_message(exc), retryable=True, connection=True,
                                hint="is the API reachable? check the network or base URL") from None
        except (json.JSONDecodeError, ValueError) as exc:
            raise ProviderError(f"malformed response: {exc}") from None
        return self.result(resp)

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
