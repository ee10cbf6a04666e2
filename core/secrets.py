"""Known secret values, and their removal from every text that is stored, printed or logged.

A key is registered when it is read (core.config.secret, the one place keys are read), and the
values of environment variables whose names say they hold a secret (…_API_KEY, …_TOKEN, …) are
registered the first time anything is redacted, so a key echoed back by a server (`HTTP 401:
Incorrect API key provided: sk-…`, as proxies and some servers do) never reaches the DuckDB file,
the reply journal, a job's traceback, a log line or the terminal. `redact` is called at the few
choke points (the columns that hold errors and messages, the CLI's error printer, the log record
factory installed here), not at every raise.
"""

from __future__ import annotations

import logging
import os
import re
import threading

MIN_LENGTH = 8  # shorter values ("1", "true") are not secrets, and replacing them would garble text
_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
_known: set[str] = set()
_lock = threading.Lock()
_env_seen = False
_pattern: re.Pattern[str] | None = None


def masked(value: str) -> str:
    """The form a secret is shown in: a short prefix and the last 4 characters (`sk-…abcd`)."""
    return f"{value[:3]}…{value[-4:]}" if len(value) >= 12 else "…" + value[-2:]


def register(value: str | None) -> str | None:
    """Remember a secret value (returned unchanged, so a read can be wrapped in it)."""
    if isinstance(value, str) and len(value.strip()) >= MIN_LENGTH:
        global _pattern
        with _lock:
            if value not in _known:
                _known.add(value)
                if value.strip() != value:
                    _known.add(value.strip())
                _pattern = None
    return value


def _register_env() -> None:
    global _env_seen
    if _env_seen:
        return
    _env_seen = True
    for name, value in os.environ.items():
        if _NAME.search(name):
            register(value)


def redact(text: str | None) -> str | None:
    """`text` with every known secret replaced by its masked form; None stays None."""
    if not text or not isinstance(text, str):
        return text
    global _pattern
    _register_env()
    pattern = _pattern
    if pattern is None:
        with _lock:
            if not _known:
                return text
            # Longest first: a key that contains another is replaced whole.
            pattern = _pattern = re.compile("|".join(re.escape(v) for v in sorted(_known, key=len, reverse=True)))
    return pattern.sub(lambda m: masked(m.group()), text)


def _install_log_redaction() -> None:
    """Every log record, of any logger and any handler, is redacted when it is made: its message
    (arguments merged in) and its traceback text, which handlers then use as they are."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging's own error report
            return record
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_install_log_redaction()
