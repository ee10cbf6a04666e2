"""From a frozen preference set to the worker's pairs.jsonl: prompts rendered, lengths checked.

The prompt is rendered exactly as the local provider renders it when the tuned model answers
(core/providers/local.py:LocalProvider.prompt): the chat template with the generation prompt added
(and Qwen3 thinking on/off), or, for a base model without a template (gemma3-270m-local), the
messages joined as plain text; either way followed by the model's `prefill`. Training on what the
model will see at evaluation is the point; the run records which rendering it used.

Pairs are checked here, in the store owner, so the pre-flight and the run agree: a prompt longer than
max_prompt_length is dropped (or cut to its last tokens), a completion longer than
max_completion_length is cut, identical or empty chosen/rejected pairs are dropped. Every decision is
listed by pair index.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CoreError, NotFound

if TYPE_CHECKING:
    from core.steps.train.config import TrainConfig
    from core.store import Store

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Base:
    """The base model as the worker loads it and as the tuned model is registered."""

    name: str                      # registered name, or the folder's name
    model_id: str                  # what the local provider loads (hub id, folder, pypi:..., .gguf)
    folder: str                    # a transformers folder the worker can load
    params: dict[str, Any] = field(default_factory=dict)  # registered params (thinking, prefill, ...)
    registered: bool = False


def resolve_base(store: Store, name: str) -> Base:
    """A registered local-provider model, or a transformers folder on disk."""
    from core import models
    from core.providers import local

    try:
        model = models.get_model(store, name)
    except NotFound:
        model = None
    if model is not None:
        if model.provider != "local":
            raise CoreError(f"{name!r} is a {model.provider} model: training needs its weights",
                            hint="register the weights as a local model (models add NAME --provider local --model FOLDER)")
        if model.adapter:
            raise CoreError(f"{name!r} already carries an adapter ({model.adapter})",
                            hint="train on its base model, or export it merged and register that folder")
        folder, gguf = local.resolve(model.model_id)
        if gguf:
            folder = str(local._convert_gguf(folder, gguf))  # once; later loads reuse the checkpoint
        elif not Path(folder).is_dir():
            folder = _hub_folder(folder)
        return Base(name, model.model_id, folder, model.params.model_dump(exclude_unset=True), True)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return Base(_SAFE.sub("-", path.resolve().name).strip("-") or "model", str(path.resolve()), str(path.resolve()))
    raise CoreError(f"no local model or transformers folder named {name!r}",
                    hint="register one on Settings (provider local), use gemma3-270m-local, or give a folder with config.json")


def _hub_folder(model_id: str) -> str:
    """A hub id already in the local HF cache (tests and the worker run offline)."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model_id, local_files_only=True)
    except Exception:
        raise CoreError(f"model {model_id!r} is not on disk", hint="download it first, or register a folder") from None


def load_tokenizer(folder: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def thinking_value(config: TrainConfig, base: Base) -> bool | None:
    return {"on": True, "off": False}.get(config.thinking, base.params.get("thinking"))


def messages_of(prompt: Any) -> list[dict[str, str]]:
    """preference_pairs.prompt: a JSON list of chat messages, or a plain string (the user message)."""
    if isinstance(prompt, str):
        try:
            parsed = json.loads(prompt)
        except json.JSONDecodeError:
            parsed = prompt
        prompt = parsed
    if isinstance(prompt, str):
        return [{"role": "user", "content": _nfc(prompt)}]
    if isinstance(prompt, dict):
        prompt = [prompt]
    if not isinstance(prompt, list) or not all(isinstance(m, dict) and "content" in m for m in prompt):
        raise ValueError("prompt is neither a string nor a list of {role, content} messages")
    return [{"role": str(m.get("role") or "user"), "content": _nfc(str(m["content"]))} for m in prompt]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def render_prompt(tok: Any, messages: list[dict[str, str]], thinking: bool | None, prefill: str | None) -> tuple[str, str]:
    """(prompt text, "chat" | "plain"), rendered by the local provider's own code."""
    from core.providers.base import GenParams
    from core.providers.local import LocalProvider

    text, chat = LocalProvider.prompt(None, tok, messages, GenParams(thinking=thinking, prefill=prefill or None))
    return text, "chat" if chat else "plain"


def template_record(tok: Any, kind: str, thinking: bool | None, prefill: str | None) -> dict[str, Any]:
    source = getattr(tok, "chat_template", None) if kind == "chat" else "plain: messages joined by blank lines"
    return {"kind": kind, "thinking": thinking, "prefill": prefill or None,
            "hash": hashlib.sha256(str(source).encode()).hexdigest()[:12]}


def load_pairs(store: Store, set_name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sets = store.rows("SELECT * FROM preference_sets WHERE name = ?", [set_name])
    if not sets:
        names = [r["name"] for r in store.rows("SELECT name FROM preference_sets ORDER BY name")]
        raise NotFound(f"no preference set named {set_name!r}",
                       hint=f"sets: {', '.join(names) or 'none yet'} (freeze one on the Review page)")
    pairs = store.rows("SELECT idx, pair_id, prompt, chosen, rejected, subject FROM preference_pairs "
                       "WHERE set_name = ? ORDER BY idx", [set_name])
    if not pairs:
        raise CoreError(f"preference set {set_name!r} has no pairs", hint="freeze a set with accepted pairs")
    return sets[0], pairs


def _cut(tok: Any, text: str, n: int, keep_end: bool) -> str:
    """The text cut to about n tokens at a token boundary (the start, or the end when keep_end)."""
    if n <= 0:
        return ""
    try:
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, TypeError, KeyError):  # slow tokenizers: decode the kept ids
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return tok.decode(ids[-n:] if keep_end else ids[:n])
    if len(offsets) <= n:
        return text
    return text[offsets[-n][0]:] if keep_end else text[:offsets[n - 1][1]]


def _strip_prefill(text: str, prefill: str | None) -> str:
    # Stored replies of a prefilled model start with the prefill; the prompt already ends with it.
    return text[len(prefill):] if prefill and text.startswith(prefill) else text


def prepare(store: Store, config: TrainConfig, base: Base | None = None, tok: Any = None) -> dict[str, Any]:
    """Render and check every pair. Returns {set, base, template, rows, dropped, truncated, lengths}.

    rows: what the worker trains on ({idx, pair_id, prompt, chosen, rejected, tokens});
    dropped / truncated: [{idx, pair_id, reason}] so the page and the run show each decision.
    """
    set_row, pairs = load_pairs(store, config.set_name)
    base = base or resolve_base(store, config.base_model)
    tok = tok or load_tokenizer(base.folder)
    thinking, prefill = thinking_value(config, base), base.params.get("prefill")
    eos = 1 if tok.eos_token_id is not None else 0
    bos = 1 if getattr(tok, "bos_token_id", None) is not None else 0
    rows, dropped, truncated, lengths, kinds = [], [], [], [], set()
    for p in pairs:
        ref = {"idx": p["idx"], "pair_id": p["pair_id"]}
        try:
            prompt, kind = render_prompt(tok, messages_of(p["prompt"]), thinking, prefill)
        except (ValueError, TypeError) as exc:
            dropped.append(ref | {"reason": f"bad prompt: {exc}"})
            continue
        kinds.add(kind)
        chosen, rejected = (_nfc(_strip_prefill(p[k] or "", prefill)) for k in ("chosen", "rejected"))
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        n_chosen = len(tok(chosen, add_special_tokens=False)["input_ids"]) + eos
        n_rejected = len(tok(rejected, add_special_tokens=False)["input_ids"]) + eos
        lengths.append({"idx": p["idx"], "prompt": n_prompt, "chosen": n_chosen, "rejected": n_rejected})
        if not chosen.strip() or not rejected.strip():
            dropped.append(ref | {"reason": "empty chosen or rejected response"})
            continue
        if chosen.strip() == rejected.strip():
            dropped.append(ref | {"reason": "chosen and rejected are identical"})
            continue
        cuts = []
        if n_prompt + bos > config.max_prompt_length:
            if config.long_prompts == "drop":
                dropped.append(ref | {"reason": f"prompt has {n_prompt} tokens > max_prompt_length {config.max_prompt_length}"})
                continue
            prompt = _cut(tok, prompt, config.max_prompt_length - bos, keep_end=True)
            cuts.append(f"prompt {n_prompt}→{config.max_prompt_length} tokens (kept its end)")
        room = min(config.max_completion_length, config.max_length - min(n_prompt + bos, config.max_prompt_length))
        for name, n in (("chosen", n_chosen), ("rejected", n_rejected)):
            if n > room:
                text = _cut(tok, chosen if name == "chosen" else rejected, room - eos, keep_end=False)
                if name == "chosen":
                    chosen = text
                else:
                    rejected = text
                cuts.append(f"{name} {n}→{room} tokens")
        if cuts:
            truncated.append(ref | {"reason": "; ".join(cuts)})
        rows.append(ref | {"prompt": prompt, "chosen": chosen, "rejected": rejected,
                           "tokens": min(n_prompt, config.max_prompt_length) * 2 + min(n_chosen, room) + min(n_rejected, room)})
    kind = "chat" if kinds == {"chat"} else "plain"
    rows, heldout = split_heldout(rows, config.heldout_fraction, config.seed)
    return {"set": {"name": set_row["name"], "hash": set_row["hash"], "pairs": len(pairs)},
            "base": base, "template": template_record(tok, kind, thinking, prefill),
            "rows": rows, "heldout": heldout, "dropped": dropped, "truncated": truncated, "lengths": lengths}


def heldout_count(n: int, fraction: float) -> int:
    """Pairs held out of n: round(fraction × n), at least 1 when n ≥ 5, and never all of them."""
    if fraction <= 0 or n < 2:
        return 0
    k = round(fraction * n)
    return min(max(k, 1 if n >= 5 else 0), n - 1)


def split_heldout(rows: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, held-out rows): a seeded draw, so the same settings hold out the same pairs."""
    import random

    k = heldout_count(len(rows), fraction)
    held = set(random.Random(seed).sample(range(len(rows)), k))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def write_pairs(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def available_sets(store: Store) -> list[dict[str, Any]]:
    """Frozen preference sets (name, pairs), newest first: what the Train page offers."""
    return store.rows("SELECT name, n_pairs, source, created_at FROM preference_sets ORDER BY created_at DESC, name")


def available_bases(store: Store) -> list[str]:
    """Registered local-provider models without an adapter: what can be trained."""
    return [r["name"] for r in store.rows("SELECT name FROM models WHERE provider = 'local' AND adapter IS NULL "
                                           "ORDER BY created_at, name")]
