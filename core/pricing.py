"""Token and cost estimates shown before a paid job starts, and running costs while it runs.

Prices are list prices in USD per 1M tokens (paid tier, prompts under 200k tokens) at the time of
writing; a model's params price_input_per_m / price_output_per_m override them. Local and
OpenAI-compatible servers cost 0 unless their params say otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.providers.base import Model

# Longest matching prefix wins, so "gemini-2.5-flash-lite" is not priced as "gemini-2.5-flash".
GEMINI_PRICES: dict[str, tuple[float, float]] = {
    "gemini-3-pro": (2.00, 12.00),
    "gemini-3-flash": (0.50, 3.00),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}
# Korean text runs about 2 characters per token in the Gemini and Qwen tokenizers.
CHARS_PER_TOKEN = 2.0
# A reasoning reply is typically ~1k tokens; replaced by the model's own mean once it has one.
DEFAULT_OUTPUT_TOKENS = 1000
# Batch APIs (OpenAI Batch, Gemini Batch Mode) bill half the live price per token.
BATCH_DISCOUNT = 0.5


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def prices(model: Model) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens, or None when unknown."""
    p = model.params
    if p.price_input_per_m is not None or p.price_output_per_m is not None:
        return p.price_input_per_m or 0.0, p.price_output_per_m or 0.0
    if model.provider != "gemini":
        return 0.0, 0.0
    mid = model.model_id.removeprefix("models/")
    match = max((k for k in GEMINI_PRICES if mid.startswith(k)), key=len, default=None)
    return GEMINI_PRICES[match] if match else None


def cost_usd(model: Model, input_tokens: float, output_tokens: float, batch: bool | None = None) -> float | None:
    """batch: at the batch price (OpenAI's Batch API and Gemini's both charge half the live price);
    default: whether the model is set to use its provider's Batch API (params batch=true)."""
    if batch is None:
        batch = bool(getattr(model.params, "batch", False))
    price = prices(model)
    if price is None:
        return None
    factor = BATCH_DISCOUNT if batch else 1.0
    return round((input_tokens * price[0] + output_tokens * price[1]) * factor / 1e6, 4)
