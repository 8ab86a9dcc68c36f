"""Every question the explorer asks of a workdir, over two DuckDBs of its views.

A typed `WHERE` runs on `manifests.views.connect`, the sealed connection `vaglio sql` uses,
after `check_read_only` like a `vaglio sql` query: user SQL can read the views and nothing else.
It filters the shard stage's rows alone (as `segments`) unless it reads a speaker column.
The explorer's own statements, whose only inputs are bound parameters and a column name checked
against the view's, run on the same views read by DuckDB's own Parquet reader (unsealed), about
ten times faster on a large workdir, and on the shard stage's rows alone where they need no
speaker column; each takes a cursor of its own, so a long overview does not hold up a page.
Every query is interrupted after `QUERY_SECONDS`, so that one heavy `WHERE` cannot hold the
app; one that outgrows memory spills into a private temporary folder, never into the workdir.

Nothing is scanned when the store opens: the figures that need a whole pass over the segments
(the filters' values and counts, the overview) are computed when first asked for, then kept for
the app's life, as the views themselves are (they list the files of the run present at start);
the pipeline's modules they use (the report, the filter's rules) are imported then too, not
when the app starts.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import duckdb

from manifests.schemas import MANIFEST
from manifests.views import MANIFEST_ROWS, SEGMENT_COLUMNS, connect
from pipeline.query.sql import QueryLimits, ReadOnlyError, check_read_only

if TYPE_CHECKING:
    from pipeline.run.summary import RunSummary

PAGE_SIZE = 50
QUERY_SECONDS = 30.0
KEPT = "(kept)"
DROPPED = "(dropped)"
TABLE_COLUMNS = ("segment_id", "source", "lang", "duration", "drop_reason", "pass_wer", "text")
"""What the segments table shows; it sorts by any column of the `segments` view."""
JOINED = frozenset(SEGMENT_COLUMNS) - set(MANIFEST.names)
"""The columns of `segments` that its joins to the speakers stage add: the explorer's own
queries read `MANIFEST_ROWS` unless they need one (the joins double a whole pass's cost)."""
_MANIFEST_COLUMNS = ", ".join(f'"{c}"' for c in SEGMENT_COLUMNS if c not in JOINED)
FACETS = ("source", "lang", "license")
FILTERS = (*FACETS, "drop_reason")
"""The filters whose values are offered as choices."""
T = TypeVar("T")


class QueryError(ValueError):
    """The typed WHERE was refused or failed; the message is shown to the user."""


@dataclass(frozen=True)
class SegmentQuery:
    """The Segments page's filters, sort and page, as they travel in its URL."""

    source: str = ""
    lang: str = ""
    drop_reason: str = ""  # a reason, KEPT, DROPPED, or "" for every row
    license: str = ""
    text: str = ""
    where: str = ""
    sort: str = ""  # a column of the `segments` view, or "" for the manifests' order
    desc: bool = False
    page: int = 1

    def params(self, **changes) -> dict[str, str]:
        """The query string of this query with `changes`, empty fields left out."""
        fields = replace(self, **changes).__dict__
        return {k: str(int(v) if isinstance(v, bool) else v) for k, v in fields.items() if v}


@dataclass(frozen=True)
class SegmentPage:
    rows: list[dict]
    total: int
    query: SegmentQuery

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


@dataclass(frozen=True)
class Choices:
    """The values each filter offers, and the segments of each combination of them: read in
    one pass, they count any page filtered by these alone without another scan."""

    values: dict[str, list[str]]  # filter -> its values (a drop reason: or KEPT, DROPPED)
    facets: list[dict]  # source, lang, drop_reason, license, n

    @classmethod
    def chosen(cls, query: SegmentQuery) -> Choices:
        """Only the values `query` has chosen: what the filters offer until all are counted."""
        values = {name: [getattr(query, name)] if getattr(query, name) else [] for name in FACETS}
        reason = [] if query.drop_reason in ("", KEPT, DROPPED) else [query.drop_reason]
        return cls(values | {"drop_reason": [KEPT, DROPPED, *reason]}, [])

    def count(self, query: SegmentQuery) -> int:
        def matches(facet: dict) -> bool:
            reason = facet["drop_reason"]
            if query.drop_reason == KEPT and reason is not None:
                return False
            if query.drop_reason == DROPPED and reason is None:
                return False
            if query.drop_reason not in ("", KEPT, DROPPED) and reason != query.drop_reason:
                return False
            return all(not getattr(query, c) or facet[c] == getattr(query, c) for c in FACETS)

        return sum(f["n"] for f in self.facets if matches(f))


@dataclass(frozen=True)
class Overview:
    """The Overview page's figures: the run summary and the report's funnel, as `vaglio
    report` computes them, and the segments per source × language and per licence."""

    summary: RunSummary
    funnel: list[tuple[str, float]]
    by_source: list[dict]
    licences: list[dict]


class Once(Generic[T]):
    """A value computed by the first caller that asks for it; callers meanwhile wait for it."""

    def __init__(self, compute: Callable[[], T]):
        self._compute = compute
        self._lock = threading.Lock()
        self._value: T | None = None

    @property
    def ready(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._compute()
            return self._value


class Store:
    """A read-only view of one workdir; close it to release the connections and spill folder."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self._spill = tempfile.mkdtemp(prefix="vaglio-explore-")
        settings = QueryLimits(spill_dir=Path(self._spill)).settings(self.workdir)
        self._views = connect(self.workdir, settings, sealed=False)
        self._sealed = Once(lambda: connect(self.workdir, settings))  # at the first WHERE
        self._sealed_lock = threading.Lock()  # one connection, one statement at a time
        self.choices = Once(self._count_choices)
        self.overview = Once(self._overview)

    def close(self) -> None:
        self._views.close()
        if self._sealed.ready:
            self._sealed.get().close()
        shutil.rmtree(self._spill, ignore_errors=True)

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        """The result of one of the explorer's own statements, as dicts."""
        with self._cursor() as cursor:
            return _fetch(cursor, sql, params)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to the unsealed views, which draws no progress bar on the
        server's console (DuckDB does, for a query past two seconds)."""
        cursor = self._views.cursor()
        cursor.execute("SET enable_progress_bar = false")
        return cursor

    def _count_choices(self) -> Choices:
        """The filters' values and counts, in one pass over the segments."""
        found = self.rows(
            "SELECT source, lang, drop_reason, license, count(*) AS n "
            f"FROM {MANIFEST_ROWS} GROUP BY ALL"
        )

        def values(column: str) -> list[str]:
            return sorted({r[column] for r in found if r[column] is not None})

        offered = {name: values(name) for name in FACETS}
        ordered = _in_rule_order(values("drop_reason"))
        return Choices(offered | {"drop_reason": [KEPT, DROPPED, *ordered]}, found)

    def _overview(self) -> Overview:
        from pipeline.run.report import hours_funnel
        from pipeline.run.summary import summarize

        with self._cursor() as cursor:
            summary = summarize(self.workdir, cursor)
            funnel = hours_funnel(cursor, summary)
        return Overview(summary, funnel, self._hours_by_source_and_language(), self._licences())

    def segments(self, query: SegmentQuery) -> SegmentPage:
        """One page of segments and how many match; a typed WHERE goes through `vaglio sql`'s
        read-only check and runs on the sealed views."""
        conditions, params = _conditions(query)
        where = " AND ".join(conditions) or "true"
        if query.sort and query.sort not in SEGMENT_COLUMNS:
            raise QueryError(f"cannot sort by {query.sort!r}: not a column of segments")
        typed = bool(query.where.strip())
        if typed:  # on its own first, so that a statement after it is named in the refusal
            self._typed(f"SELECT 1 FROM segments WHERE\n{query.where}", [], run=False)
        run = self._typed if typed else self.rows
        if query.sort in JOINED:
            table = "segments"
        else:
            table = self._typed_table(query.where) if typed else MANIFEST_ROWS
        columns = ", ".join(f'"{c}"' for c in TABLE_COLUMNS)
        offset = (max(query.page, 1) - 1) * PAGE_SIZE
        limit = f"LIMIT {PAGE_SIZE} OFFSET {offset}"
        if query.sort:
            # The sort reads the key and the ids alone, then the page's rows are read by id:
            # a top-N that carries every column of every row costs twice as much here, and
            # five times as much over the sealed views, whose Arrow scan decodes in full every
            # column it reads.
            direction = "DESC" if query.desc else "ASC"
            order = f'ORDER BY "{query.sort}" {direction} NULLS LAST, segment_id'
            ids = run(f"SELECT segment_id FROM {table} WHERE {where} {order} {limit}", params)
            rows = self._by_id([r["segment_id"] for r in ids], columns)
        else:
            rows = run(f"SELECT {columns} FROM {table} WHERE {where} {limit}", params)
        count_sql = f"SELECT count(*) AS n FROM {table} WHERE {where}"
        if not typed and not query.text and self.choices.ready:
            total = self.choices.get().count(query)
        else:
            total = run(count_sql, params)[0]["n"]
        return SegmentPage(rows, total, query)

    def _typed_table(self, where: str) -> str:
        """What a typed WHERE (checked already) filters: the shard stage's rows, under the name
        `segments`, when it reads no speaker column (it binds without them); else the view
        itself, whose joins cost a pass over the speakers' rows."""
        manifest = f"(SELECT {_MANIFEST_COLUMNS} FROM {MANIFEST_ROWS}) AS segments"
        sealed = self._sealed.get()
        try:
            with self._sealed_lock:
                sealed.execute(f"DESCRIBE SELECT 1 FROM {manifest} WHERE\n{where}")
        except duckdb.Error:
            return "segments"
        return manifest

    def _by_id(self, ids: list[str], columns: str) -> list[dict]:
        """The segments `ids`, in that order, with `columns`."""
        if not ids:
            return []
        found = self.rows(
            f"SELECT {columns} FROM {MANIFEST_ROWS} "
            f"WHERE segment_id IN ({', '.join('?' * len(ids))})",
            ids,
        )
        by_id = {r["segment_id"]: r for r in found}
        return [by_id[i] for i in ids if i in by_id]

    def _typed(self, sql: str, params: list, run: bool = True) -> list[dict]:
        """The rows of `sql`, which holds typed SQL, once `vaglio sql`'s check passed it (with
        `run`, else none), from the sealed views."""
        try:
            sealed = self._sealed.get()
            with self._sealed_lock:
                check_read_only(sealed, sql)
                return _fetch(sealed, sql, params) if run else []
        except ReadOnlyError as error:
            raise QueryError(str(error)) from None
        except duckdb.PermissionException as error:
            raise QueryError(
                f"refused: only the workdir's views can be queried ({str(error).splitlines()[0]})"
            ) from None
        except duckdb.Error as error:
            raise QueryError(f"SQL error: {str(error).splitlines()[0]}") from None

    def segment(self, segment_id: str) -> dict | None:
        found = self.rows("SELECT * FROM segments_all WHERE segment_id = ?", [segment_id])
        return found[0] if found else None

    def neighbours(self, recording_id: str, segment_id: str, around: int = 3) -> list[dict]:
        """The segments of a recording just before and after `segment_id`, itself included."""
        rows = self.rows(
            f'SELECT segment_id, "offset", duration, drop_reason, text FROM {MANIFEST_ROWS} '
            'WHERE recording_id = ? ORDER BY "offset"',
            [recording_id],
        )
        at = next((i for i, r in enumerate(rows) if r["segment_id"] == segment_id), 0)
        return rows[max(0, at - around) : at + around + 1]

    def drop_samples(self, per_reason: int, seed: int) -> dict[str, tuple[int, list[dict]]]:
        """Reason -> (dropped segments, a sample of them), in the order rules are checked; the
        sample is fixed for a seed, so a link to it shows the same rows. One pass picks the
        sample (the ids of least hash per reason, no sort of the drops), a second reads them."""
        picked = self.rows(
            "SELECT drop_reason, count(*) AS n, min_by(segment_id, hash(segment_id, ?), ?) AS ids "
            f"FROM {MANIFEST_ROWS} WHERE drop_reason IS NOT NULL GROUP BY drop_reason",
            [seed, per_reason],
        )
        rows = self._by_id(
            sorted(i for r in picked for i in r["ids"]),
            "segment_id, drop_reason, lang, duration, text_pass1, text, pass_wer",
        )
        counts = {r["drop_reason"]: r["n"] for r in picked}
        return {
            reason: (counts[reason], [r for r in rows if r["drop_reason"] == reason])
            for reason in _in_rule_order(counts)
        }

    def quarantine(self) -> tuple[list[dict], list[dict]]:
        """(quarantined recordings with their reasons, duplicates with what they repeat)."""
        quarantined = self.rows(
            "SELECT recording_id, source, path, license, declared_duration, quarantine_reason "
            "FROM recordings WHERE quarantine_reason IS NOT NULL ORDER BY source, recording_id"
        )
        duplicates = self.rows(
            "SELECT recording_id, source, duration, duplicate_of FROM recordings "
            "WHERE duplicate_of IS NOT NULL ORDER BY source, recording_id"
        )
        return quarantined, duplicates

    def _hours_by_source_and_language(self) -> list[dict]:
        return self.rows(
            "SELECT source, lang, count(*) AS segments, sum(duration) / 3600 AS hours, "
            "coalesce(sum(duration) FILTER (drop_reason IS NULL), 0) / 3600 AS kept_hours "
            f"FROM {MANIFEST_ROWS} GROUP BY ALL ORDER BY source, lang NULLS LAST"
        )

    def _licences(self) -> list[dict]:
        return self.rows(
            "SELECT license, any_value(attribution) AS attribution, count(*) AS segments, "
            "count(*) FILTER (drop_reason IS NULL) AS kept, coalesce(sum(duration) FILTER "
            f"(drop_reason IS NULL), 0) / 3600 AS kept_hours FROM {MANIFEST_ROWS} "
            "GROUP BY license ORDER BY license"
        )


def _in_rule_order(reasons: Iterable[str]) -> list[str]:
    """Drop reasons in the order the filter checks its rules, any it does not know after."""
    from pipeline.stages.filter import DROP_REASONS  # the stages, once a pass needs them

    given = set(reasons)
    return [r for r in DROP_REASONS if r in given] + sorted(given - set(DROP_REASONS))


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: list | None) -> list[dict]:
    """The result as dicts; interrupted after QUERY_SECONDS."""
    timer = threading.Timer(QUERY_SECONDS, con.interrupt)
    timer.start()
    try:
        cursor = con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        timer.cancel()


def _conditions(query: SegmentQuery) -> tuple[list[str], list]:
    """SQL conditions with `?` parameters for every filter; the typed WHERE goes in as typed,
    on lines of its own so that a `--` comment in it ends with it."""
    conditions: list[str] = []
    params: list = []
    for column in FACETS:
        value = getattr(query, column)
        if value:
            conditions.append(f'"{column}" = ?')
            params.append(value)
    if query.drop_reason == KEPT:
        conditions.append("drop_reason IS NULL")
    elif query.drop_reason == DROPPED:
        conditions.append("drop_reason IS NOT NULL")
    elif query.drop_reason:
        conditions.append("drop_reason = ?")
        params.append(query.drop_reason)
    if query.text:
        conditions.append(
            "(contains(lower(text), lower(?)) OR contains(lower(text_pass1), lower(?)))"
        )
        params += [query.text, query.text]
    if query.where.strip():
        conditions.append(f"(\n{query.where}\n)")
    return conditions, params
