"""Read-only SQL over a workdir, in two fences, within bounded memory and disk, interruptible.

The connection itself cannot touch a file (see `manifests.views`): that is what makes writing
impossible. Before a statement runs, its type is checked as well, so that a refusal names what
was refused — the statement under an `EXPLAIN`, since `EXPLAIN ANALYZE` runs what it explains —
instead of surfacing as a permission error, and so the in-memory views cannot be dropped or
shadowed within a query.

DuckDB would take 80 % of the machine's memory and spill into `./.tmp` of whatever folder the
caller stands in; a query here gets `QueryLimits` instead, spills under the workdir, and runs
in a thread of its own so that Ctrl-C interrupts it at once (the main thread would otherwise
wait inside DuckDB, where no Python signal handler runs, until the query ends).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa

from manifests.views import connect
from pipeline.query.limits import QueryLimits

_COMMENTS = r"\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*"
# `EXPLAIN` or `EXPLAIN ANALYZE` and the comments before it; options in parentheses may follow.
_EXPLAIN = re.compile(_COMMENTS + r"EXPLAIN\s+(?:ANALY[SZ]E\b)?", re.IGNORECASE | re.DOTALL)
_OPTIONS = re.compile(r"\s*\([^()]*\)")
_FIRST_WORD = re.compile(_COMMENTS + r"(\w+)", re.DOTALL)
# Types DuckDB gives to statements of several keywords (INSTALL is a LOAD, RESET and USE are
# SETs, CHECKPOINT is a CALL): a refusal names the keyword the user typed.
_SHARED_TYPES = {"LOAD", "SET", "CALL"}
DEFAULT_LIMITS = QueryLimits()


class ReadOnlyError(ValueError):
    """The query would change something or reach outside the views; `vaglio sql` only reads."""


def _explained(con: duckdb.DuckDBPyConnection, statement: str) -> str:
    """The type of the statement under an EXPLAIN (recursively), else `EXPLAIN` itself.

    What follows `EXPLAIN` may start with options, `(FORMAT json)`, or be a statement in
    parentheses, `(SELECT 1)`: whichever reading parses as one statement is the one.
    """
    prefix = _EXPLAIN.match(statement)
    if prefix is None:
        return "EXPLAIN"
    rest = statement[prefix.end() :]
    options = _OPTIONS.match(rest)
    for candidate in (rest, *([rest[options.end() :]] if options else [])):
        try:
            inner = con.extract_statements(candidate)
        except duckdb.Error:
            continue
        if len(inner) == 1:
            return _statement_type(con, inner[0])
    return "EXPLAIN"


def _statement_type(con: duckdb.DuckDBPyConnection, statement: duckdb.Statement) -> str:
    if statement.type is duckdb.StatementType.EXPLAIN:
        return _explained(con, statement.query)
    first_word = _FIRST_WORD.match(statement.query)
    if statement.type.name in _SHARED_TYPES and first_word:
        return first_word.group(1).upper()
    return statement.type.name


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise ReadOnlyError unless `sql` is exactly one SELECT (or an EXPLAIN of one)."""
    statements = con.extract_statements(sql)
    for statement in statements:
        kind = _statement_type(con, statement)
        if kind != "SELECT":
            raise ReadOnlyError(f"refused: {kind} statements are not allowed, only SELECT")
    if len(statements) != 1:
        raise ReadOnlyError(f"expected exactly one SQL statement, got {len(statements)}")


def _interruptible(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The query's result, computed in a worker thread; Ctrl-C in the caller interrupts it."""
    with ThreadPoolExecutor(1, thread_name_prefix="sql") as pool:
        running = pool.submit(lambda: con.sql(sql).to_arrow_table())
        try:
            return running.result()
        except KeyboardInterrupt:
            con.interrupt()
            raise


def run_query(workdir: Path, sql: str, limits: QueryLimits = DEFAULT_LIMITS) -> pa.Table:
    """Run one read-only query over the workdir's views and return the result."""
    with connect(workdir, limits.settings(workdir)) as con:
        check_read_only(con, sql)
        try:
            return _interruptible(con, sql)
        except duckdb.PermissionException as error:
            raise ReadOnlyError(
                "refused: only the workdir's views can be queried; files, databases and "
                f"extensions are out of reach ({str(error).splitlines()[0]})"
            ) from None
