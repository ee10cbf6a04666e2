"""Migration m010_error_reasons: why a question has no outcome (shipped: never edit; add a new one).

An API failure is never an answer (issue 11 item 1): a mined question whose samples errored gets
outcome 'error' and the reason here; an evaluated question whose replies errored is stored as
"no answer (error)" with the reason, apart from a parsed wrong answer.
"""

from __future__ import annotations

import duckdb


def up(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ALTER TABLE mining_items ADD COLUMN error VARCHAR")  # outcome 'error': the first failure
    con.execute("ALTER TABLE predictions ADD COLUMN error VARCHAR")  # NULL answer because a reply errored
