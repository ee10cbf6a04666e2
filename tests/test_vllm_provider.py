"""The offline vLLM provider (core/providers/vllm_offline.py) against a stand-in `vllm` module that
records the calls (vLLM itself needs CUDA and is not installed here): registered only when vllm is
importable; a question's K samples go as one conversation with SamplingParams(n=K)."""

from __future__ import annotations

import importlib.util

from minidata import import_mini

from core import models, providers
from core.providers import vllm_offline
from core.steps.solve import solve

FAKE = '''
CALLS = []

class SamplingParams:
    def __init__(self, n=1, **kw):
        self.n, self.kw = n, kw

class _Comp:
    def __init__(self, text):
        self.text, self.token_ids, self.finish_reason = text, [0] * 5, "stop"

class _Out:
    def __init__(self, n):
        self.prompt_token_ids = [0] * 11
        self.outputs = [_Comp('풀이.\\n{"Answer":"1"}') for _ in range(n)]

class LLM:
    def __init__(self, model, **kw):
        CALLS.append(("init", model, kw))

    def chat(self, messages, sampling_params=None, use_tqdm=True, **kw):
        CALLS.append(("chat", len(messages), sampling_params.n, sampling_params.kw, {"use_tqdm": use_tqdm, **kw}))
        return [_Out(sampling_params.n) for _ in messages]
'''


def test_not_offered_without_vllm():
    assert importlib.util.find_spec("vllm") is None  # this machine: no vLLM
    assert "vllm" not in providers.PROVIDERS


def test_k_samples_of_a_question_are_one_conversation_with_n_k(store, tmp_path, monkeypatch):
    (tmp_path / "fake" / "vllm").mkdir(parents=True)
    (tmp_path / "fake" / "vllm" / "__init__.py").write_text(FAKE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    monkeypatch.setattr(providers, "PROVIDERS", dict(providers.PROVIDERS))
    monkeypatch.setattr(vllm_offline, "_ENGINES", {})
    providers.register_optional()
    assert "vllm" in providers.PROVIDERS
    import vllm

    import_mini(store, tmp_path, n=3)
    models.add_model(store, "v", "vllm", "Qwen/Qwen3-14B-AWQ",
                     params={"tensor_parallel_size": 2, "batch_size": 12, "thinking": False, "max_tokens": 256})
    s = solve.solve(store, "mini", "v", samples=4, temperature=0.7)
    assert s["answered"] == 12 and s["requests_sent"] == 12 and s["errors"] == 0
    assert vllm.CALLS[0] == ("init", "Qwen/Qwen3-14B-AWQ", {"tensor_parallel_size": 2})
    chats = [c for c in vllm.CALLS if c[0] == "chat"]
    assert chats == [("chat", 3, 4, {"temperature": 0.7, "max_tokens": 256},
                      {"use_tqdm": False, "chat_template_kwargs": {"enable_thinking": False}})]
    again = solve.solve(store, "mini", "v", samples=4, temperature=0.7)
    assert again["cached"] == 12 and len([c for c in vllm.CALLS if c[0] == "chat"]) == 1
