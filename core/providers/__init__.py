"""Provider registry. Built-ins register through the same call an extension would use.

Entries are "module:Class" strings so that choosing Gemini never imports torch, and vice versa.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from core.errors import CoreError
from core.providers.base import GenParams, Provider, ProviderError, Result

if TYPE_CHECKING:
    from core.providers.base import Model

__all__ = ["GenParams", "Provider", "ProviderError", "Result", "PROVIDERS", "register_provider",
           "provider_class", "make", "register_optional"]

PROVIDERS: dict[str, str] = {}


def register_provider(name: str, target: str) -> None:
    """name: what `models add --provider` takes; target: "package.module:ClassName"."""
    PROVIDERS[name] = target


register_provider("gemini", "core.providers.gemini:GeminiProvider")
register_provider("openai", "core.providers.openai_compat:OpenAICompatProvider")
register_provider("local", "core.providers.local:LocalProvider")


def register_optional() -> None:
    """Providers whose library is not always installed: offered only where it is (found, not imported)."""
    if importlib.util.find_spec("vllm") is not None:  # CUDA machines with vLLM installed
        register_provider("vllm", "core.providers.vllm_offline:VLLMProvider")


register_optional()


def provider_class(name: str) -> type[Provider]:
    if name not in PROVIDERS:
        raise CoreError(f"unknown provider {name!r}", hint=f"choose one of {', '.join(sorted(PROVIDERS))}")
    module, _, cls = PROVIDERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def make(model: Model) -> Provider:
    """A ready provider for a registered model (raises a CoreError with a hint if it cannot be)."""
    return provider_class(model.provider)(model)
