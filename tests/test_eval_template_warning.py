"""Evaluate warns when a tuned model is prompted unlike its training (thinking / prefill), issue 13."""

from __future__ import annotations

import json

from core import models
from core.cli import main
from core.steps.evaluate.eval_run import EvalConfig, prompt_warning
from core.store import Store
from tests.loopback import Loopback, Reply
from tests.minidata import import_mini


def test_eval_warns_on_a_prompt_mismatch_and_not_otherwise(tmp_path, capsys):
    db = tmp_path / "w.duckdb"
    with Loopback("openai", lambda n, body: Reply(text='풀이.\n{"Answer":"1"}')) as srv:
        s = Store(db)
        import_mini(s, tmp_path)
        name = "mini"
        models.add_model(s, "tuned", "openai", "orpo", base_url=srv.base_url,
                         params={"thinking": False, "retry_base_s": 0.01})
        s.execute("INSERT INTO training_runs (id, set_name, base_model, state, run_dir, config, config_hash, template, "
                  "adapter_model) VALUES ('train-x', 'set', 'base', 'done', '/tmp/none', '{}', 'h', ?, 'tuned')",
                  [json.dumps({"kind": "chat", "thinking": True, "prefill": None})])
        warn = prompt_warning(s, EvalConfig(dataset=name, model="tuned"))
        assert warn and "thinking off" in warn and "train-x" in warn
        assert prompt_warning(s, EvalConfig(dataset=name, model="base-never-trained")) is None
        s.close()
        code = main(["--db", str(db), "eval", "run", "--dataset", name, "--model", "tuned"])
        err = capsys.readouterr().err
        assert code == 0
        assert "Warning: tuned was trained (run train-x)" in err
