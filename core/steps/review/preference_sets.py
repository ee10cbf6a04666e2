"""Preference sets: frozen, named, content-hashed lists of (prompt, chosen, rejected): what training reads.

A set is made by freezing a review (the accepted pairs of an augment run) or by importing pairs made
elsewhere (TRL JSONL, CSV, Parquet, a `datasets` folder, a Hub dataset id when online). Its hash is
the sha256 of the canonical JSON of its pairs, so the same content has the same hash wherever it
came from; a name is never silently given other content (freeze/import again with other content is
refused unless `replace`; the same content is a no-op).

The prompt of a frozen pair is built exactly as the solve step builds it (`core.prompts.solve_messages`):
a list of chat messages [system, user], stored as JSON; chosen and rejected are the raw responses.
An imported prompt may be a plain string (training wraps it as the user message). The chat template
is never baked in: training applies it. `trl_records` gives TRL's conversational preference form
(prompt: messages, chosen/rejected: one assistant message each), the form TRL's ORPO/DPO data path
reads correctly: with plain-string chosen/rejected beside a message-list prompt TRL drops the prompt
and takes the common prefix of the two answers as the prompt instead.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from core.errors import CoreError, ImportFailed, NotFound
from core.runs import StepConfig, finish_run, open_run
from core.steps.data.formats.base import ROW_ERRORS, Issue, row_problem, shown_name, unholdable

if TYPE_CHECKING:
    from core.store import Store

FIELDS = ("prompt", "chosen", "rejected", "subject")
USUAL = {"prompt": ("prompt", "question", "instruction", "input"), "chosen": ("chosen", "chosen_response"),
         "rejected": ("rejected", "rejected_response"), "subject": ("subject", "category")}
FORMATS = ("trl", "hf", "csv")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


class FreezeConfig(StepConfig):
    """Freeze the accepted pairs of an augment run as a named preference set."""

    step: ClassVar[str] = "freeze"
    name: str = Field(description="name of the preference set (letters, digits, . _ -)")
    run: str = Field(description="augment run whose accepted pairs are frozen")


class ImportPairsConfig(StepConfig):
    """Import preference pairs made elsewhere as a named set."""

    step: ClassVar[str] = "pairs-import"
    name: str = Field(description="name of the preference set")
    source: str = Field(description="file, datasets folder or Hub dataset id")
    sha256: str = Field(description="content hash of the pairs read")
    mapping: dict[str, str] = Field(default_factory=dict, description="FIELD=COLUMN for prompt, chosen, rejected, subject")


# -- canonical form -----------------------------------------------------------------------------

def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).replace("\r\n", "\n")


def content_hash(pairs: list[dict[str, Any]]) -> str:
    """sha256 of the canonical JSON of [{prompt, chosen, rejected}, ...] in set order."""
    canon = json.dumps([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs],
                       ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise CoreError(f"invalid set name {name!r}", hint="use letters, digits, '.', '_' and '-' (up to 100)")
    return name


def _existing(store: Store, name: str) -> dict[str, Any] | None:
    rows = store.rows("SELECT * FROM preference_sets WHERE name = ?", [name])
    return rows[0] if rows else None


def _check_free(store: Store, name: str, digest: str, replace: bool) -> dict[str, Any] | None:
    """The set already named `name`, refused when it holds other content and `replace` is not given."""
    old = _existing(store, name)
    if old and old["hash"] != digest and not replace:
        raise CoreError(f"a preference set named {name!r} already exists with other content "
                        f"({old['n_pairs']} pairs, hash {old['hash'][:12]})",
                        hint="choose another name, or pass --replace to overwrite it")
    return old


def _store_set(store: Store, name: str, source: str, pairs: list[dict[str, Any]], detail: dict[str, Any],
               replace: bool) -> dict[str, Any]:
    """Write a set all-or-nothing; same content under the same name is a no-op."""
    digest = content_hash(pairs)
    old = _check_free(store, name, digest, replace)
    if old and old["hash"] == digest:
        return _public(old) | {"already": True}
    with store.transaction():
        store.execute("DELETE FROM preference_pairs WHERE set_name = ?", [name])
        store.execute("DELETE FROM preference_sets WHERE name = ?", [name])
        store.execute("INSERT INTO preference_sets (name, source, hash, n_pairs, detail) VALUES (?, ?, ?, ?, ?)",
                      [name, source, digest, len(pairs), json.dumps(detail, ensure_ascii=False, default=str)])
        store.executemany(
            "INSERT INTO preference_pairs (set_name, idx, pair_id, prompt, chosen, rejected, subject, question) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [[name, i, p.get("pair_id"), json.dumps(p["prompt"], ensure_ascii=False), p["chosen"], p["rejected"],
              p.get("subject"), json.dumps(p["question"], ensure_ascii=False) if p.get("question") else None]
             for i, p in enumerate(pairs)])
    return get_set(store, name) | {"already": False, "replaced": bool(old)}


# -- freeze -------------------------------------------------------------------------------------

def pair_of(candidate: dict[str, Any]) -> dict[str, Any]:
    """One frozen pair from a candidate row: the solve prompt, raw chosen/rejected, the question."""
    from core.prompts import solve_messages
    from core.steps.augment import gates

    q = gates.as_question(candidate)
    messages, _ = solve_messages(q)
    return {"pair_id": candidate["id"], "prompt": messages, "chosen": candidate["chosen"],
            "rejected": candidate["rejected"], "subject": candidate.get("subject"),
            "question": {"passage": q["paragraph"], "question": q["question"], "extra": q["extra"],
                         "choices": q["choices"], "answer": q["answer"]}}


def freeze(store: Store, name: str, run: str, replace: bool = False) -> dict[str, Any]:
    """Freeze the accepted pairs of augment run `run` as set `name` (order: seed, index, id)."""
    from core.steps.review import review

    _check_name(name)
    accepted = review.list_pairs(store, run=run, status="accepted")
    if not accepted:
        total = store.scalar("SELECT count(*) FROM candidates WHERE run_id = ?", [run])
        if not total:
            raise NotFound(f"no candidates in augment run {run!r}", hint="list runs with: python -m core review runs")
        raise CoreError(f"run {run!r} has no accepted pairs yet ({total} candidates)",
                        hint=f"accept some first: python -m core review accept --run {run} --passing")
    broken = [f"{c['id']} (no {', '.join(review.incomplete(c))})" for c in accepted if review.incomplete(c)]
    if broken:
        raise CoreError(f"{len(broken)} accepted pair(s) cannot be frozen: " + "; ".join(broken[:5]),
                        hint="edit them, or put them back to pending")
    pairs = [pair_of(c) for c in accepted]
    config = FreezeConfig(name=name, run=run)
    run_id, _ = open_run(store, config)
    mining_run = accepted[0]["mining_run"]
    detail = {"run": run_id, "augment_run": run, "mining_run": mining_run,
              "subjects": _subjects(pairs), "prompt": "solve"}
    return _store_for_run(store, run_id, name, f"review:{run}", pairs, detail, replace)


def store_pairs(store: Store, config: StepConfig, name: str, source: str, pairs: list[dict[str, Any]],
                detail: dict[str, Any], replace: bool = False) -> dict[str, Any]:
    """Store pairs another step made (e.g. a recipe's on-policy pairs: pair_of rows with another
    rejected) as set `name`, all or nothing, under the run record of `config`."""
    _check_name(name)
    if not pairs:
        raise CoreError(f"no pairs to store as {name!r}")
    run_id, _ = open_run(store, config)
    detail = {"run": run_id, **detail, "subjects": _subjects(pairs), "prompt": "solve"}
    return _store_for_run(store, run_id, name, source, pairs, detail, replace)


def _subjects(pairs: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in pairs:
        key = p.get("subject") or "(none)"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def _summary(s: dict[str, Any]) -> dict[str, Any]:
    return {"name": s["name"], "pairs": s["pairs"], "source": s["source"], "hash": s["hash"],
            "already": s.get("already", False)}


# -- import -------------------------------------------------------------------------------------

def _read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    from core.steps.data.formats.tabular import JsonProblem, jsonl_lines

    rows = []
    for i, obj in jsonl_lines(path):
        if isinstance(obj, JsonProblem):
            what = f"not valid JSON ({obj})" if obj.syntax else f"unreadable: {obj}"
            raise ImportFailed(f"{path.name}: line {i} is {what}", [Issue(f"line {i}", what)])
        if not isinstance(obj, dict):
            raise ImportFailed(f"{path.name}: line {i} is not a JSON object", [Issue(f"line {i}", "not a JSON object")])
        rows.append((f"line {i}", obj))
    return rows


def _read_source(source: str, split: str | None) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """(where, row) pairs and a label; a path that does not exist but looks like owner/name is a Hub id."""
    from core.steps.data.formats import tabular
    from core.steps.data.formats.base import check_size

    path = Path(source)
    if path.exists():
        check_size(path)
        if path.is_dir():
            rows = tabular.read_hf_folder(path)
            return [(f"row {i}", r) for i, r in enumerate(rows, 1)], shown_name(path)
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            return _read_jsonl(path), shown_name(path)
        if suffix == ".csv":
            return [(f"row {i}", r) for i, r in enumerate(tabular.read_csv(path), 1)], shown_name(path)
        if suffix == ".parquet":
            return [(f"row {i}", r) for i, r in enumerate(tabular.read_parquet(path), 1)], shown_name(path)
        if suffix == ".json":
            data = tabular.read_json(path)
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise ImportFailed(f"{shown_name(path)}: expected a JSON list of objects")
            return [(f"item {i}", r) for i, r in enumerate(data, 1)], shown_name(path)
        raise ImportFailed(f"{shown_name(path)}: unknown file type {suffix or '(none)'}",
                           hint="use .jsonl (TRL), .csv, .parquet, .json or a datasets folder")
    looks_like_file = Path(source).suffix.lower() in (".jsonl", ".csv", ".json", ".parquet") or source.startswith(
        (".", "/", "~"))
    if _HUB_ID.fullmatch(source) and not looks_like_file:
        return [(f"row {i}", r) for i, r in enumerate(_read_hub(source, split), 1)], source
    raise ImportFailed(f"{source}: no such file or folder", hint="give a file path, a datasets folder or a Hub id owner/name")


def _read_hub(repo_id: str, split: str | None) -> list[dict[str, Any]]:
    offline = any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    if offline:
        raise CoreError(f"cannot download {repo_id} from the Hugging Face Hub: this machine is set offline "
                        "(HF_HUB_OFFLINE=1)",
                        hint="unset HF_HUB_OFFLINE on a machine with internet, or import a downloaded file or folder")
    from datasets import load_dataset

    try:
        ds = load_dataset(repo_id, split=split or "train")
    except Exception as exc:  # network, missing repo, bad split: all one message
        raise CoreError(f"could not load {repo_id} from the Hub: {type(exc).__name__}: {exc}".splitlines()[0],
                        hint="check the id and split (--split), and the network") from None
    return ds.to_list()


def _columns(rows: list[tuple[str, dict[str, Any]]], mapping: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise ImportFailed(f"unknown mapping field(s) {', '.join(unknown)}", hint="fields are " + ", ".join(FIELDS))
    present = list(dict.fromkeys(k for _, r in rows[:50] for k in r))
    cols: dict[str, str] = {}
    for field in FIELDS:
        if field in mapping:
            if mapping[field] not in present:
                raise ImportFailed(f"mapped column {mapping[field]!r} not in the file",
                                   hint="columns found: " + ", ".join(present))
            cols[field] = mapping[field]
        else:
            found = next((c for c in USUAL[field] if c in present), None)
            if found:
                cols[field] = found
    missing = [f for f in ("chosen", "rejected") if f not in cols]
    if missing:
        raise ImportFailed(f"no column for {', '.join(missing)}",
                           hint="map one with --map FIELD=COLUMN; columns found: " + ", ".join(present))
    return cols


def _messages(value: Any, column: str = "value") -> list[dict[str, str]] | None:
    """A list of {role, content} messages (also from a JSON string of one), else None.

    A JSON string that nests too deeply (or holds a number too large) raises ValueError: a CSV cell
    `[[[[…` is a row to refuse with its number, like the same line in JSONL, never a RecursionError."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
        except RecursionError:
            raise ValueError(f"{column} is nested too deeply to read") from None
    if isinstance(value, (list, tuple)) and value and all(isinstance(m, dict) and "role" in m and "content" in m
                                                          for m in value):
        return [{"role": str(m["role"]), "content": _nfc(str(m["content"] or ""))} for m in value]
    return None


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return _nfc(str(value))


def _answer(value: Any, column: str) -> tuple[str | None, list | None, str | None]:
    """(response text, prompt messages it carried, problem) from a string or a message list.

    A list may be the whole conversation (TRL's implicit prompt): the last message must be the
    assistant's; the messages before it are returned as the prompt it carried.
    """
    msgs = _messages(value, column)
    if msgs is None:
        if isinstance(value, (list, tuple, dict)):
            return None, None, "must be a string or a list of {role, content} messages"
        return _text(value), None, None
    if msgs[-1]["role"] != "assistant":
        return None, None, "its last message must have role 'assistant'"
    return msgs[-1]["content"], msgs[:-1] or None, None


def parse_pairs(rows: list[tuple[str, dict[str, Any]]], mapping: dict[str, str] | None = None
                ) -> tuple[list[dict[str, Any]], list[Issue]]:
    """Pairs from rows, with every problem found (where + what); nothing is stored here."""
    if not rows:
        raise ImportFailed("the file has no rows")
    cols = _columns(rows, dict(mapping or {}))
    pairs, issues = [], []
    for where, row in rows:
        if unreadable := unholdable(row):  # checked first: every later step would trip on it
            issues.extend(Issue(where, p) for p in unreadable)
            continue
        try:
            pair, problems = _pair(row, cols)
            if pair is not None:  # a CSV cell's JSON messages may decode to a surrogate ("\ud800")
                problems = unholdable(pair)
        except ROW_ERRORS as exc:  # any one row's problem is that row's, with its number
            pair, problems = None, [row_problem(exc)]
        if problems:
            issues.extend(Issue(where, p) for p in problems)
        else:
            pairs.append(pair)
    return pairs, issues


def _pair(row: dict[str, Any], cols: dict[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
    """One pair from one row, or the row's problems."""
    problems = []
    raw_prompt = row.get(cols["prompt"]) if "prompt" in cols else None
    prompt: Any = _messages(raw_prompt, "prompt")
    if prompt is None:
        if isinstance(raw_prompt, (list, tuple, dict)):
            problems.append("prompt must be a string or a list of {role, content} messages")
        prompt = _text(raw_prompt)
    chosen, c_prefix, c_err = _answer(row.get(cols["chosen"]), "chosen")
    rejected, r_prefix, r_err = _answer(row.get(cols["rejected"]), "rejected")
    problems += [f"{name} {err}" for name, err in (("chosen", c_err), ("rejected", r_err)) if err]
    if not prompt and c_prefix and c_prefix == r_prefix:
        prompt = c_prefix  # implicit prompt: the shared conversation before the answers
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        problems.append("missing prompt" if prompt is None else "empty prompt")
    elif isinstance(prompt, list):
        if not any(m["content"].strip() for m in prompt):
            problems.append("empty prompt")
        elif prompt[-1]["role"] != "user":
            problems.append("the prompt's last message must have role 'user'")
    for name, value, err in (("chosen", chosen, c_err), ("rejected", rejected, r_err)):
        if err:
            continue
        if value is None:
            problems.append(f"missing {name}")
        elif not value.strip():
            problems.append(f"empty {name}")
    if not problems and chosen.strip() == rejected.strip():
        problems.append("chosen and rejected are identical")
    if problems:
        return None, problems
    subject = _text(row.get(cols["subject"])) if "subject" in cols else None
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "subject": subject or None}, []


def system_text(system: str | None) -> str | None:
    """`solve`: the solve prompt's system part (as in effect now); other text as given; None/empty: none."""
    if not system or not system.strip():
        return None
    if system.strip() == "solve":
        from core.prompts import load

        return load("solve").parts()[0] or None
    return _nfc(system.strip())


def import_pairs(store: Store, source: str | Path, name: str, mapping: dict[str, str] | None = None,
                 split: str | None = None, replace: bool = False, system: str | None = None) -> dict[str, Any]:
    """Import a preference file/folder/Hub dataset as set `name`: all or nothing, bad rows listed.

    system: wrap plain-string prompts as [system, user] messages with this system text ("solve": the
    solve prompt's system part), e.g. to train the original project's pairs the way it did (its
    trainer added a student system prompt); message-list prompts are kept as they are.
    """
    _check_name(name)
    source = str(source)
    rows, label = _read_source(source, split)
    pairs, issues = parse_pairs(rows, mapping)
    if issues:
        raise ImportFailed(f"{label}: {len({i.where for i in issues})} bad row(s); nothing was imported",
                           issues, hint="fix the rows listed (or map columns with --map FIELD=COLUMN)")
    sys_text = system_text(system)
    if sys_text:
        for p in pairs:
            if isinstance(p["prompt"], str):
                p["prompt"] = [{"role": "system", "content": sys_text}, {"role": "user", "content": p["prompt"]}]
    config = ImportPairsConfig(name=name, source=label, sha256=content_hash(pairs), mapping=dict(mapping or {}))
    _check_free(store, name, config.sha256, replace)  # refused before any run record is opened
    run_id, _ = open_run(store, config)
    extra = sorted({k for _, r in rows[:50] for k in r} - set(_columns(rows, dict(mapping or {})).values()))
    detail = {"run": run_id, "file": label, "split": split, "mapping": mapping or {}, "system": system or None,
              "ignored_columns": extra, "subjects": _subjects(pairs),
              "prompt": "messages" if isinstance(pairs[0]["prompt"], list) else "string"}
    return _store_for_run(store, run_id, name, f"import:{label}", pairs, detail, replace)


def _store_for_run(store: Store, run_id: str, name: str, source: str, pairs: list[dict[str, Any]],
                   detail: dict[str, Any], replace: bool) -> dict[str, Any]:
    """Store the set and close its run record: done with the summary, or failed with the reason."""
    try:
        result = _store_set(store, name, source, pairs, detail, replace)
    except BaseException as exc:  # never left 'running': a store failure is recorded with its reason
        finish_run(store, run_id, "failed", message=getattr(exc, "message", None) or str(exc) or type(exc).__name__)
        raise
    finish_run(store, run_id, "done", _summary(result))
    return result


# -- reading ------------------------------------------------------------------------------------

def _public(row: dict[str, Any]) -> dict[str, Any]:
    detail = row.get("detail")
    return {"name": row["name"], "pairs": row["n_pairs"], "source": row["source"], "hash": row["hash"],
            "created_at": row.get("created_at"),
            "detail": json.loads(detail) if isinstance(detail, str) else (detail or {})}


def list_sets(store: Store) -> list[dict[str, Any]]:
    return [_public(r) for r in store.rows("SELECT * FROM preference_sets ORDER BY created_at DESC, name")]


def get_set(store: Store, name: str) -> dict[str, Any]:
    row = _existing(store, name)
    if not row:
        names = [r["name"] for r in store.rows("SELECT name FROM preference_sets ORDER BY name")]
        raise NotFound(f"no preference set {name!r}", hint="sets: " + (", ".join(names) or "none yet"))
    return _public(row)


def get_pairs(store: Store, name: str) -> list[dict[str, Any]]:
    """The set's pairs in order: prompt (messages list or string), chosen, rejected, subject, question."""
    get_set(store, name)
    rows = store.rows("SELECT * FROM preference_pairs WHERE set_name = ? ORDER BY idx", [name])
    for r in rows:
        r["prompt"] = json.loads(r["prompt"])
        r["question"] = json.loads(r["question"]) if r.get("question") else None
    return rows


def delete_set(store: Store, name: str) -> int:
    n = get_set(store, name)["pairs"]
    with store.transaction():
        store.execute("DELETE FROM preference_pairs WHERE set_name = ?", [name])
        store.execute("DELETE FROM preference_sets WHERE name = ?", [name])
    return n


def trl_records(store: Store, name: str) -> list[dict[str, Any]]:
    """TRL conversational preference rows: prompt = messages (a string prompt becomes the user
    message), chosen/rejected = [{"role": "assistant", "content": ...}]. No chat template applied."""
    out = []
    for p in get_pairs(store, name):
        prompt = p["prompt"] if isinstance(p["prompt"], list) else [{"role": "user", "content": p["prompt"]}]
        out.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": p["chosen"]}],
                    "rejected": [{"role": "assistant", "content": p["rejected"]}]})
    return out


def default_export_path(name: str, fmt: str) -> Path:
    """Where the page offers to write an export: the workspace's exports/ folder."""
    from core import config

    base = Path(os.environ.get("CSAT_WORKSPACE") or config.WORKSPACE) / "exports"
    return base / {"trl": f"{name}.jsonl", "csv": f"{name}.csv"}.get(fmt, f"{name}-hf")


def export(store: Store, name: str, fmt: str, out: str | Path) -> dict[str, Any]:
    """Write set `name` as TRL JSONL (`trl`), a `datasets` save_to_disk folder (`hf`) or CSV (`csv`)."""
    if fmt not in FORMATS:
        raise CoreError(f"unknown export format {fmt!r}", hint="one of " + ", ".join(FORMATS))
    info = get_set(store, name)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records = trl_records(store, name)
    if fmt == "trl":
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        tmp.replace(out)
    elif fmt == "hf":
        from datasets import Dataset

        if out.is_file() or (out.is_dir() and any(out.iterdir())):
            raise CoreError(f"{out} already exists", hint="pick a new folder for the datasets export")
        Dataset.from_list(records).save_to_disk(str(out))
    else:
        pairs = get_pairs(store, name)
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(["idx", "pair_id", "subject", "system", "user", "prompt", "chosen", "rejected"])
            for p in pairs:
                msgs = p["prompt"] if isinstance(p["prompt"], list) else [{"role": "user", "content": p["prompt"]}]
                system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
                user = "\n\n".join(m["content"] for m in msgs if m["role"] == "user")
                prompt = json.dumps(p["prompt"], ensure_ascii=False) if isinstance(p["prompt"], list) else p["prompt"]
                w.writerow([p["idx"], p["pair_id"] or "", p["subject"] or "", system, user, prompt,
                            p["chosen"], p["rejected"]])
        tmp.replace(out)
    return {"name": name, "format": fmt, "out": str(out), "pairs": info["pairs"], "hash": info["hash"]}
