"""Korean prompt templates kept as files, with user overrides in the workspace.

A template file has a system part and a user part split by a line `---user---`, and placeholders
written `{{name}}`. Rendering substitutes placeholders in one pass (no str.format), so the braces of
JSON examples such as {"Answer":"N"} are safe; a placeholder without a value, or a value the
template does not use, is an error. `data/workspace/prompts/NAME.md` (under $CSAT_WORKSPACE when
set) takes precedence over the packaged file, so prompts can be edited from the UI.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import config
from core.errors import CoreError
from core.render import question_text

PACKAGE_DIR = Path(__file__).resolve().parent
USER_MARKER = "---user---"
# Set to a directory to redirect overrides (tests); None means $CSAT_WORKSPACE/prompts or data/workspace/prompts.
OVERRIDE_DIR: Path | None = None

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_MARKER_LINE = re.compile(rf"^[ \t]*{re.escape(USER_MARKER)}[ \t]*$", re.MULTILINE)


class PromptError(CoreError):
    """A template is missing, malformed, or does not match the values given to it."""


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Template:
    name: str
    text: str
    overridden: bool = False

    @property
    def hash(self) -> str:
        """First 12 hex digits of the sha256 of the text: the prompt's version in stored requests."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12]

    @property
    def placeholders(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.text))

    def parts(self) -> tuple[str, str]:
        """(system, user) text, unrendered."""
        pieces = _MARKER_LINE.split(self.text)
        if len(pieces) != 2:
            raise PromptError(f"prompt '{self.name}' must contain exactly one line '{USER_MARKER}'",
                              hint="put the system part above that line and the user part below it")
        return pieces[0].strip(), pieces[1].strip()

    def render(self, **values: Any) -> list[dict[str, str]]:
        """Chat messages: a system message (when the system part is not empty) and a user message."""
        used = self.placeholders
        missing = sorted(used - values.keys())
        if missing:
            raise PromptError(f"prompt '{self.name}' uses unknown placeholder(s) "
                              + ", ".join("{{" + m + "}}" for m in missing),
                              hint="known: " + (", ".join(sorted(values)) or "none"))
        unused = sorted(values.keys() - used)
        if unused:
            raise PromptError(f"prompt '{self.name}' is missing placeholder(s) "
                              + ", ".join("{{" + u + "}}" for u in unused),
                              hint="add them back, or reset the prompt to its default"
                              + (f" ({override_path(self.name)})" if self.overridden else ""))
        clean = {k: _nfc(str(v)) for k, v in values.items()}

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: clean[m.group(1)], text)

        system, user = self.parts()
        messages = [{"role": "system", "content": fill(system)}] if system else []
        return messages + [{"role": "user", "content": fill(user)}]


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise PromptError(f"invalid prompt name {name!r}", hint="lowercase letters, digits and _")
    if not (PACKAGE_DIR / f"{name}.md").is_file():
        raise PromptError(f"no prompt named '{name}'",
                          hint="known: " + ", ".join(t.name for t in list_templates()))
    return name


def override_dir() -> Path:
    if OVERRIDE_DIR is not None:
        return Path(OVERRIDE_DIR)
    workspace = os.environ.get("CSAT_WORKSPACE")
    return (Path(workspace) if workspace else config.WORKSPACE) / "prompts"


def override_path(name: str) -> Path:
    return override_dir() / f"{_check_name(name)}.md"


def _read(path: Path) -> str:
    try:
        return _nfc(path.read_text(encoding="utf-8")).replace("\r\n", "\n")
    except UnicodeDecodeError as exc:  # an override saved by another editor in another encoding
        raise PromptError(f"{path} is not UTF-8 text (byte {exc.start})",
                          hint="save it as UTF-8, or reset the prompt to its default") from None


def default(name: str) -> Template:
    """The packaged template, ignoring any override."""
    return Template(name, _read(PACKAGE_DIR / f"{_check_name(name)}.md"))


def load(name: str) -> Template:
    """The override in the workspace when present, else the packaged template."""
    path = override_path(name)
    if path.is_file():
        return Template(name, _read(path), overridden=True)
    return default(name)


def save_override(name: str, text: str) -> Template:
    """Store an edited prompt; it must keep the marker and exactly the placeholders of the packaged one."""
    text = _nfc(text).replace("\r\n", "\n")
    template = Template(name, text, overridden=True)
    template.parts()
    expected = default(name).placeholders
    if template.placeholders != expected:
        extra = sorted(template.placeholders - expected)
        lacking = sorted(expected - template.placeholders)
        raise PromptError(f"prompt '{name}' placeholders differ from the default"
                          + (f"; unknown: {', '.join(extra)}" if extra else "")
                          + (f"; missing: {', '.join(lacking)}" if lacking else ""),
                          hint="use {{" + "}}, {{".join(sorted(expected)) + "}}")
    path = override_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return template


def reset_override(name: str) -> bool:
    """Remove the override; True when there was one."""
    path = override_path(name)
    if path.is_file():
        path.unlink()
        return True
    return False


def list_templates() -> list[Template]:
    """Every packaged prompt, as currently in effect (override or default)."""
    names = sorted(p.stem for p in PACKAGE_DIR.glob("*.md") if _NAME.fullmatch(p.stem))
    return [load(n) for n in names]


def _block(q: dict[str, Any]) -> str:
    return _nfc(question_text(q))


def solve_messages(q: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    """Messages asking for step-by-step reasoning ending in {"Answer":"N"}, and the template hash."""
    t = load("solve")
    return t.render(question_block=_block(q), n_choices=len(q["choices"])), t.hash


def judge_messages(q: dict[str, Any], teacher_reasoning: str, student_reasoning: str,
                   swap: bool = False) -> tuple[list[dict[str, str]], str]:
    """Messages asking which correct reasoning is better, as {"preferred": "teacher"|"student"|"tie", ...}.

    swap=True shows the student's reasoning first (run both orders to control position bias).
    """
    t = load("judge")
    first, second = [("teacher", teacher_reasoning), ("student", student_reasoning)][:: -1 if swap else 1]
    return t.render(question_block=_block(q), first_label=first[0], first_reasoning=first[1].strip(),
                    second_label=second[0], second_reasoning=second[1].strip()), t.hash


def classify_messages(q: dict[str, Any], subjects: list[str]) -> tuple[list[dict[str, str]], str]:
    """Messages asking for one subject from `subjects`, as {"subject": "..."}."""
    if not subjects:
        raise PromptError("no subjects to classify into", hint="pass at least one subject name")
    t = load("classify_subject")
    listing = "\n".join(f"- {s}" for s in subjects)
    return t.render(question_block=_block(q), subjects=listing), t.hash
