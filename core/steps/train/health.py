"""Health signals of a training run: the known ways preference training goes wrong, read off its curves
and its held-out check, each with one line on what it means.

ORPO logs rewards/chosen and rewards/rejected as β × mean log-prob of each completion (TRL), so their
trends are the policy's log-probs. Each signal is ok, warn, or unknown (too few steps to say).
"""

from __future__ import annotations

import statistics
from typing import Any

MIN_STEPS = 4  # fewer logged steps than this say nothing about a trend


def _thirds(values: list[float]) -> tuple[float, float] | None:
    vals = [v for v in values if isinstance(v, (int, float))]
    if len(vals) < MIN_STEPS:
        return None
    k = max(1, len(vals) // 3)
    return statistics.fmean(vals[:k]), statistics.fmean(vals[-k:])


def _signal(key: str, title: str, state: str, detail: str) -> dict[str, str]:
    return {"key": key, "title": title, "state": state, "detail": detail}


def signals(metrics: list[dict[str, Any]], heldout: dict[str, Any] | None = None) -> list[dict[str, str]]:
    col = {k: [m.get(k) for m in metrics] for k in ("rewards_chosen", "rewards_rejected", "rewards_margins",
                                                    "grad_norm", "rewards_accuracies")}
    out = []
    chosen, margin = _thirds(col["rewards_chosen"]), _thirds(col["rewards_margins"])
    if chosen is None or margin is None:
        out.append(_signal("chosen_falls", "chosen log-prob", "unknown", "too few logged steps to see a trend"))
    elif chosen[1] < chosen[0] and margin[1] > margin[0]:
        out.append(_signal("chosen_falls", "chosen log-prob falling", "warn",
                           f"chosen reward {chosen[0]:+.3f} → {chosen[1]:+.3f} while the margin rises: the model pushes "
                           "both completions down (typical when chosen and rejected differ in a few tokens); "
                           "check the pairs, raise the NLL weight (lower beta)"))
    else:
        out.append(_signal("chosen_falls", "chosen log-prob", "ok", f"chosen reward {chosen[0]:+.3f} → {chosen[1]:+.3f}"))
    rejected = _thirds(col["rewards_rejected"])
    if rejected is None:
        out.append(_signal("rejected_rises", "rejected log-prob", "unknown", "too few logged steps to see a trend"))
    elif rejected[1] > rejected[0]:
        out.append(_signal("rejected_rises", "rejected log-prob rising", "warn",
                           f"rejected reward {rejected[0]:+.3f} → {rejected[1]:+.3f}: the model grows fonder of the "
                           "answers it should drop (reward hacking, or pairs whose rejected side is the better one)"))
    else:
        out.append(_signal("rejected_rises", "rejected log-prob", "ok",
                           f"rejected reward {rejected[0]:+.3f} → {rejected[1]:+.3f}"))
    norms = [g for g in col["grad_norm"] if isinstance(g, (int, float))]
    if not norms:
        out.append(_signal("grad_norm", "grad norm", "unknown", "no grad norm logged yet"))
    elif max(norms) > 100:
        out.append(_signal("grad_norm", "grad norm over 100", "warn",
                           f"peak {max(norms):.0f}: unstable updates; lower the learning rate or check for broken pairs"))
    else:
        out.append(_signal("grad_norm", "grad norm", "ok", f"peak {max(norms):.2f}"))
    acc = [a for a in col["rewards_accuracies"] if isinstance(a, (int, float))]
    if len(acc) < 2 * MIN_STEPS:
        out.append(_signal("accuracy_stuck", "reward accuracy", "unknown", "too few logged steps"))
    else:
        late = statistics.fmean(acc[len(acc) // 2:])
        if 0.4 <= late <= 0.6:
            out.append(_signal("accuracy_stuck", "reward accuracy stuck near 0.5", "warn",
                               f"{late:.2f} over the second half: the model does not tell chosen from rejected; "
                               "raise the learning rate or beta, or check that the pairs differ in what matters"))
        else:
            out.append(_signal("accuracy_stuck", "reward accuracy", "ok", f"{late:.2f} over the second half"))
    out.append(_length_drift(heldout))
    return out


def _length_drift(heldout: dict[str, Any] | None) -> dict[str, str]:
    base, tuned = (heldout or {}).get("base") or {}, (heldout or {}).get("tuned") or {}
    b, t = base.get("gen_len_mean"), tuned.get("gen_len_mean")
    if b is None or t is None:
        return _signal("length_drift", "completion length", "unknown", "not measured (heldout_gen_tokens 0, or no held-out pairs)")
    capped_b, capped_t = base.get("gen_capped") or 0, tuned.get("gen_capped") or 0
    if abs(t - b) > 0.5 * max(b, 1.0) or abs(capped_t - capped_b) >= 0.5:
        return _signal("length_drift", "completion length drifting", "warn",
                       f"held-out completions {b:.1f} → {t:.1f} tokens (cut at the cap: {capped_b:.0%} → {capped_t:.0%}): "
                       "the tuned model writes much longer or shorter answers than the base")
    return _signal("length_drift", "completion length", "ok", f"held-out completions {b:.1f} → {t:.1f} tokens")


def verdict(heldout: dict[str, Any] | None) -> str | None:
    """A plain warning when the tuned model is not above the base on the held-out pairs."""
    base, tuned = (heldout or {}).get("base"), (heldout or {}).get("tuned")
    if not base or not tuned or tuned.get("margin") is None or base.get("margin") is None:
        return None
    if tuned.get("step") == 0:
        return None  # only the before-training score so far
    if tuned["margin"] <= base["margin"]:
        return (f"The tuned model is not above the base on the {heldout.get('pairs')} held-out pairs (margin "
                f"{base['margin']:+.4f} → {tuned['margin']:+.4f}): it did not learn to prefer the chosen answers on "
                "pairs it did not see. Check the pairs, train longer, or try another beta / learning rate (train sweep).")
    return None
