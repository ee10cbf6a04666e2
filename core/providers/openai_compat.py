"""Any OpenAI-compatible chat-completions server: vLLM, SGLang, Ollama, OpenAI itself.

This is how generation scales past one machine: serve the student with vLLM on as many GPUs as
there are and point a model at each server's base URL. SDK retries are off (max_retries=0); the
engine retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import openai

from core import config
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

DEFAULT_KEY_ENV = "OPENAI_API_KEY"  # read when the model names no api_key_env, as the SDK does


class OpenAICompatProvider(Provider):
    name: ClassVar[str] = "openai"
    # Budgets are Gemini's notion; vLLM/SGLang take thinking on/off through the chat template.
    unsupported: ClassVar[frozenset[str]] = frozenset({"thinking_budget", "prefill"})

    def __init__(self, model: Model):
        super().__init__(model)
        if model.params.api_key_env:  # named explicitly: it must be set
            key = model.api_key()
            if not key:
                raise CoreError(f"no API key for model {model.name!r}",
                                hint=f"set {model.key_env}, or remove api_key_env if the server needs none")
        else:  # the SDK's own default; local servers (vLLM, Ollama) need none
            key = config.secret(DEFAULT_KEY_ENV)
        self.client = openai.AsyncOpenAI(
            base_url=model.base_url or None,
            api_key=key or "not-needed",  # local servers ignore it; the SDK insists on one
            max_retries=0,
            timeout=model.params.timeout_s + 1,  # the engine's timeout fires first
        )

    def request(self, messages: list[dict[str, str]], params: GenParams) -> dict[str, Any]:
        return chat_request(self.model.model_id, messages, params)

    async def generate(self, messages: list[dict[str, str]], params: GenParams) -> Result:
        try:
            resp = await self.client.chat.completions.create(**self.request(messages, params))
        except openai.APITimeoutError as exc:
            raise ProviderError(f"timed out: {exc}", retryable=True, connection=True) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(f"cannot reach {self.model.base_url or 'the API'}: {exc}", retryable=True,
                                hint="is the server running? check the base URL", connection=True) from None
        except openai.APIStatusError as exc:
            retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
            detail = exc.body.get("message") if isinstance(exc.body, dict) else None
            raise status_error(exc.status_code, detail or exc.message, retry_after) from None
        except (openai.APIResponseValidationError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise ProviderError(f"malformed response: {exc}") from None
        except transport_errors() as exc:
            raise ProviderError(transport_message(exc), retryable=True, connection=True) from None
        return self.result(resp)

    @staticmethod
    def result(resp: Any) -> Result:
        choices = getattr(resp, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise ProviderError(f"malformed response: no choices in {str(resp)[:200]!r}")
        choice = choices[0]
        msg = choice.message
        extra = msg.model_extra or {}
        # vLLM/SGLang reasoning parsers put the thinking here (older: reasoning_content, newer: reasoning).
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        usage = resp.usage
        return Result(text=msg.content or "", reasoning=reasoning, finish_reason=choice.finish_reason,
                      truncated=is_truncated(choice.finish_reason),
                      input_tokens=usage.prompt_tokens if usage else None,
                      output_tokens=usage.completion_tokens if usage else None)

    async def aclose(self) -> None:
        await self.client.close()


def chat_request(model_id: str, messages: list[dict[str, str]], params: GenParams) -> dict[str, Any]:
    """The SDK arguments of one chat-completions call (`extra_body` merges into the JSON)."""
    body: dict[str, Any] = {"model": model_id, "messages": messages}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("max_tokens", "max_tokens")):
        value = getattr(params, ours)
        if value is not None:
            body[theirs] = value
    if params.json_schema is not None:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": params.json_schema}}
    if params.thinking is not None:  # Qwen3 on vLLM/SGLang: the chat template's switch
        body["extra_body"] = {"chat_template_kwargs": {"enable_thinking": params.thinking}}
    return body


def wire_body(model_id: str, messages: list[dict[str, str]], params: GenParams) -> dict[str, Any]:
    """The JSON body the SDK puts on the wire for `chat_request` (a batch file line's `body`)."""
    body = chat_request(model_id, messages, params)
    extra = body.pop("extra_body", {})
    return {**body, **extra}
