"""Every option that --help shows takes effect: each TrainConfig field typed as `--field-name` and as
`--param field_name=` sets the same field, on top of a preset; the other steps' generated options too.
Lengths the user did not set follow those they did; result-neutral settings keep the run's identity.
No worker runs here: the click commands are parsed and the config built as the commands build it.
"""

from __future__ import annotations

import typing

import pytest
import typer

from core.cli import _register, app
from core.cli.options import build_config
from core.errors import CoreError
from core.steps.train.config import PRESETS, TrainConfig
from core.steps.train.data import heldout_count, split_heldout

CORE = ("set_name", "base_model")
_register()  # every noun, as `python -m core` registers them


def _other_value(name: str, field) -> tuple[str, typing.Any]:
    """(what to type, the value the field must then hold) — never the default."""
    ann = field.annotation
    default = field.get_default(call_default_factory=True)
    if typing.get_origin(ann) is typing.Literal:
        v = next(c for c in typing.get_args(ann) if c != default)
        return str(v), v
    if ann is bool:
        return ("false" if default else "true"), not default
    if typing.get_origin(ann) is list:
        return "q_proj,v_proj", ["q_proj", "v_proj"]
    bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le", "lt") if getattr(m, k, None) is not None}
    if ann is int:
        v = default + 1 if bounds.get("le", bounds.get("lt", 10**9)) > default + 1 else default - 1
        if name == "max_steps":
            v = 7
        return str(v), v
    if ann is float:
        hi = bounds.get("le", bounds.get("lt"))
        v = default / 2 if default else 0.05
        if hi is not None and v >= hi:
            v = hi / 2
        return repr(v), v
    raise AssertionError(f"no test value for {name} ({ann})")


def _train_ctx(args: list[str], verb: str = "start") -> typer.Context:
    group = typer.main.get_command(app).commands["train"]
    cmd = group.commands[verb]
    return cmd.make_context(verb, ["--set", "s", "--base", "b", *args])


def _train_config(args: list[str], verb: str = "start") -> TrainConfig:
    from core.cli.train import _common_params, _config

    ctx = _train_ctx(args, verb)
    params = dict(ctx.params)
    fixed = {p.name: params.pop(p.name) for p in _common_params}
    for extra in ("as_json", "wait"):
        params.pop(extra, None)
    with ctx:
        return _config(ctx, fixed["set_name"], fixed["base"], fixed["param"], fixed["preset_name"], params)


FIELDS = [(n, f) for n, f in TrainConfig.model_fields.items() if n not in CORE]


@pytest.mark.parametrize("verb", ["start", "preflight", "sweep"])
@pytest.mark.parametrize("name,field", FIELDS, ids=[n for n, _ in FIELDS])
def test_every_train_setting_takes_effect_in_both_spellings(verb, name, field):
    typed, value = _other_value(name, field)
    flag = "--" + name.replace("_", "-")
    if field.annotation is bool:
        as_option = [flag if value else "--no-" + name.replace("_", "-")]
    elif typing.get_origin(field.annotation) is list:
        as_option = [x for v in value for x in (flag, v)]
    else:
        as_option = [flag, typed]
    extra = ["--max-length", "9000"] if name in ("max_prompt_length", "max_completion_length") else []
    by_option = _train_config([*as_option, *extra], verb)
    by_param = _train_config(["--param", f"{name}={typed}", *extra], verb)
    assert getattr(by_option, name) == value, f"{flag} {typed} did not set {name}"
    assert getattr(by_param, name) == value, f"--param {name}={typed} did not set {name}"


def test_options_apply_on_top_of_a_preset():
    cfg = _train_config(["--preset", "tiny CPU trial", "--max-steps", "6", "--lora-r", "4"])
    assert (cfg.max_steps, cfg.lora_r, cfg.backend) == (6, 4, "cpu")  # the preset's other settings kept
    assert _train_config(["--preset", "tiny CPU trial", "--param", "max_steps=9"]).max_steps == 9
    plain = _train_config(["--max-steps", "7", "--lora-r", "4"])
    assert (plain.max_steps, plain.lora_r) == (7, 4)
    assert plain.digest() != _train_config(["--max-steps", "6", "--lora-r", "4"]).digest()  # another run


def test_a_length_the_user_did_not_set_follows_one_they_did():
    cfg = _train_config(["--param", "max_length=256"])
    assert cfg.max_length == 256 and cfg.max_prompt_length < 256 and cfg.max_prompt_length + cfg.max_completion_length <= 256
    cfg = _train_config(["--preset", "tiny CPU trial", "--max-length", "300"])  # the preset's 512 prompt yields
    assert cfg.max_length == 300 and cfg.max_prompt_length < 300
    cfg = _train_config(["--max-prompt-length", "9000"])
    assert cfg.max_length > 9000
    with pytest.raises(CoreError, match="max_prompt_length"):  # both set by the user: their conflict is theirs
        _train_config(["--max-length", "256", "--max-prompt-length", "300"])


def test_result_neutral_settings_keep_the_run_identity():
    base = TrainConfig(set_name="s", base_model="b")
    for name in TrainConfig.not_identity:
        _, value = _other_value(name, TrainConfig.model_fields[name])
        assert TrainConfig(set_name="s", base_model="b", **{name: value}).digest() == base.digest(), name
    for name in ("beta", "learning_rate", "heldout_fraction", "seed", "max_steps"):
        _, value = _other_value(name, TrainConfig.model_fields[name])
        assert TrainConfig(set_name="s", base_model="b", **{name: value}).digest() != base.digest(), name


def test_presets_are_valid_configs():
    for values in PRESETS.values():
        TrainConfig(set_name="s", base_model="b", **values)  # raises on a bad preset
    assert PRESETS["tiny CPU trial"]["long_prompts"] == "truncate"


def test_heldout_split_is_seeded_and_sized_as_promised():
    assert [heldout_count(n, 0.1) for n in (1, 2, 4, 5, 9, 10, 30)] == [0, 0, 0, 1, 1, 1, 3]
    assert heldout_count(30, 0.2) == 6 and heldout_count(30, 0) == 0 and heldout_count(2, 0.9) == 1
    rows = [{"idx": i} for i in range(30)]
    train, held = split_heldout(rows, 0.2, seed=3407)
    again, held_again = split_heldout(rows, 0.2, seed=3407)
    assert held == held_again and len(held) == 6 and len(train) == 24
    assert {r["idx"] for r in train}.isdisjoint(r["idx"] for r in held)
    assert split_heldout(rows, 0.2, seed=1)[1] != held


# -- the other steps' generated options ---------------------------------------------------------------

def _walk(cmd, path=()):
    import click as _  # noqa: F401  (typer's vendored click commands share the interface)

    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _walk(sub, (*path, name))
    yield path, cmd


def _config_commands():
    """(command path, config class) for every command whose options are generated from a StepConfig."""
    from core.runs import StepConfig

    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)

    classes = [c for c in subclasses(StepConfig) if c.model_fields]
    root = typer.main.get_command(app)
    out = []
    for path, cmd in _walk(root):
        if not path or path[0] == "train":
            continue
        names = {p.name for p in cmd.params}
        fits = [c for c in classes if len(set(c.model_fields) - names) <= 1 and len(set(c.model_fields) & names) >= 3]
        if fits:
            out.append((path, cmd, max(fits, key=lambda c: len(set(c.model_fields) & names))))
    return out


def test_other_steps_every_generated_option_takes_effect():
    found = _config_commands()
    paths = {" ".join(p) for p, _, _ in found}
    assert {"solve", "mine", "eval run", "augment", "map run", "map embed", "map overlap", "map flips"} <= paths, paths
    checked = 0
    for path, cmd, cls in found:
        names = {p.name for p in cmd.params}
        required = [n for n, f in cls.model_fields.items() if f.is_required() and n in names]
        for name, field in cls.model_fields.items():
            if name not in names or field.is_required():
                continue
            ann = field.annotation
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            base_ann = args[0] if len(args) == 1 and type(None) in typing.get_args(ann) else ann
            default = field.get_default(call_default_factory=True)
            if typing.get_origin(base_ann) is dict:
                continue
            if typing.get_origin(base_ann) is typing.Literal:
                value = next(c for c in typing.get_args(base_ann) if c != default)
                typed = str(value)
            elif base_ann is bool:
                value, typed = not default, ""
            elif typing.get_origin(base_ann) is list:
                value = list(default[:1]) if default and len(default) > 1 else ["x-value"]
                typed = ""
            elif base_ann is int:
                value = default + 1 if default else 3
                typed = str(value)
            elif base_ann is float:
                value = default / 2 if default else 0.3
                typed = repr(value)
            elif base_ann is str:
                value = typed = "x-value"
            else:
                continue
            flag = "--" + name.replace("_", "-")
            if base_ann is bool:
                argv = [flag if value else "--no-" + name.replace("_", "-")]
            elif typing.get_origin(base_ann) is list:
                argv = [x for v in value for x in (flag, v)]
            else:
                argv = [flag, typed]
            req = [x for r in required for x in ("--" + r.replace("_", "-"), _required_value(cls, r))]
            # the command's own required options and arguments beyond the config (e.g. batch write --out)
            for prm in cmd.params:
                if prm.required and prm.name not in cls.model_fields:
                    req += [prm.opts[0], "x"] if getattr(prm, "param_type_name", "") == "option" else ["x"]
            ctx = cmd.make_context(path[-1], [*req, *argv])
            # typer hands the callback lists where bare click parsing gives tuples
            params = {k: list(v) if isinstance(v, tuple) else v for k, v in ctx.params.items() if k in cls.model_fields}
            params |= {r: "x" for r, f in cls.model_fields.items() if f.is_required() and r not in names}  # arguments
            try:
                config = build_config(cls, params)
            except CoreError:
                continue  # a value this field's own validator refuses for this step (e.g. a cross-field rule)
            assert getattr(config, name) == value, f"{' '.join(path)} {flag} {typed} did not set {name}"
            checked += 1
    assert checked >= 30, checked


def _required_value(cls, name: str) -> str:
    ann = cls.model_fields[name].annotation
    if typing.get_origin(ann) is typing.Literal:
        return str(typing.get_args(ann)[0])
    return "1" if ann is int else "x"
