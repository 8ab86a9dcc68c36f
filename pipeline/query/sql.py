"""Read-only SQL over a workdir: statements that could write are refused before they run."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from manifests.views import connect

_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class ReadOnlyError(ValueError):
    """The query would change something; `vaglio sql` only reads."""


def run_query(workdir: Path, sql: str) -> pa.Table:
    """Run one read-only query over the workdir's views and return the result."""
    con = connect(workdir)
    try:
        statements = con.extract_statements(sql)
        if len(statements) != 1:
            raise ReadOnlyError(f"expected exactly one SQL statement, got {len(statements)}")
        kind = statements[0].type
        if kind not in _READ_ONLY:
            raise ReadOnlyError(f"refused: {kind.name} statements are not allowed, only SELECT")
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()
