"""The held-out check, worker side: how much more likely the policy finds chosen than rejected on
pairs it never trained on, with the adapter off (base) and on (tuned).

Preference accuracy is the share of pairs whose mean per-token log-prob of the chosen completion
exceeds the rejected one's; the margin is the mean of chosen minus rejected. Sequences are built as
ORPO builds them (prompt, then the completion and EOS), one pair at a time (held-out sets are small).
Optionally a short greedy generation per prompt measures completion length (its drift is a known
failure sign). The split itself is made by the store owner (core/steps/train/data.py).
"""

from __future__ import annotations

import contextlib
import statistics
from typing import Any


def _ids(tok: Any, prompt: str, completion: str, max_prompt: int, max_length: int) -> tuple[list[int], int]:
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    if tok.bos_token_id is not None and (not p or p[0] != tok.bos_token_id):
        p = [tok.bos_token_id, *p]
    p = p[-max_prompt:]
    c = tok(completion, add_special_tokens=False)["input_ids"]
    if tok.eos_token_id is not None:
        c = [*c, tok.eos_token_id]
    c = c[:max(1, max_length - len(p))]
    return p + c, len(p)


def _mean_logp(model: Any, ids: list[int], start: int) -> float:
    import torch

    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    logits = model(input_ids=x).logits[0, start - 1:-1].float()
    logp = torch.log_softmax(logits, dim=-1).gather(1, x[0, start:].unsqueeze(1)).squeeze(1)
    return float(logp.mean())


@contextlib.contextmanager
def _mode(model: Any, adapter: bool):
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), (contextlib.nullcontext() if adapter else model.disable_adapter()):
            yield
    finally:
        model.train(was_training)


def score(model: Any, tok: Any, rows: list[dict[str, Any]], cfg: dict[str, Any], adapter: bool) -> dict[str, Any]:
    """{pairs, accuracy, margin, chosen_logp, rejected_logp[, gen_len_mean, gen_capped]}."""
    chosen, rejected = [], []
    with _mode(model, adapter):
        for r in rows:
            for text, out in ((r["chosen"], chosen), (r["rejected"], rejected)):
                ids, start = _ids(tok, r["prompt"], text, cfg["max_prompt_length"], cfg["max_length"])
                out.append(_mean_logp(model, ids, start))
        result: dict[str, Any] = {
            "pairs": len(rows), "accuracy": round(sum(c > r for c, r in zip(chosen, rejected)) / len(rows), 4),
            "margin": round(statistics.fmean(c - r for c, r in zip(chosen, rejected)), 4),
            "chosen_logp": round(statistics.fmean(chosen), 4), "rejected_logp": round(statistics.fmean(rejected), 4)}
        n_new = int(cfg.get("heldout_gen_tokens") or 0)
        if n_new:
            result |= _lengths(model, tok, rows, cfg, n_new) | {"gen_tokens": n_new}
    return result


def _lengths(model: Any, tok: Any, rows: list[dict[str, Any]], cfg: dict[str, Any], n_new: int) -> dict[str, Any]:
    """Greedy completions of up to n_new tokens: mean length and the share that hit the cap."""
    import torch

    device = next(model.parameters()).device
    lengths = []
    for r in rows:
        p, _ = _ids(tok, r["prompt"], "", cfg["max_prompt_length"], cfg["max_length"])
        p = p[:-1] if tok.eos_token_id is not None and p and p[-1] == tok.eos_token_id else p
        x = torch.tensor([p], device=device)
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=n_new, do_sample=False,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        new = out[0, x.shape[1]:].tolist()
        if tok.eos_token_id in new:
            new = new[:new.index(tok.eos_token_id)]
        lengths.append(len(new))
    return {"gen_len_mean": round(statistics.fmean(lengths), 2),
            "gen_capped": round(sum(n >= n_new for n in lengths) / len(lengths), 4)}
