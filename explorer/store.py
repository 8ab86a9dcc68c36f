"""Every question the explorer asks of a workdir, over one sealed DuckDB of its views.

The connection is `manifests.views.connect`, the one `vaglio sql` uses, and a typed `WHERE`
goes through `check_read_only` like a `vaglio sql` query: the app can read the views and
nothing else. It is opened once (registering the views reads every file's schema) and shared
under a lock; each query is interrupted after `QUERY_SECONDS` so that one heavy `WHERE` cannot
hold the app. A query that outgrows memory spills into a private temporary folder, never into
the workdir.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from manifests.views import SEGMENT_COLUMNS, connect
from pipeline.query.sql import QueryLimits, ReadOnlyError, check_read_only
from pipeline.stages.filter import DROP_REASONS

PAGE_SIZE = 50
QUERY_SECONDS = 30.0
KEPT = "(kept)"
DROPPED = "(dropped)"
TABLE_COLUMNS = ("segment_id", "source", "lang", "duration", "drop_reason", "pass_wer", "text")
"""What the segments table shows; it sorts by any column of the `segments` view."""


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
    one pass when the app starts, they count any page filtered by these alone without a scan."""

    sources: list[str]
    langs: list[str]
    drop_reasons: list[str]
    licenses: list[str]
    facets: list[dict]  # source, lang, drop_reason, license, n

    def count(self, query: SegmentQuery) -> int:
        def matches(facet: dict) -> bool:
            reason = facet["drop_reason"]
            if query.drop_reason == KEPT and reason is not None:
                return False
            if query.drop_reason == DROPPED and reason is None:
                return False
            if query.drop_reason not in ("", KEPT, DROPPED) and reason != query.drop_reason:
                return False
            return all(
                not getattr(query, c) or facet[c] == getattr(query, c)
                for c in ("source", "lang", "license")
            )

        return sum(f["n"] for f in self.facets if matches(f))


class Store:
    """A read-only view of one workdir; close it to release the connection and spill folder."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self._spill = tempfile.mkdtemp(prefix="vaglio-explore-")
        limits = QueryLimits(spill_dir=Path(self._spill))
        self._con = connect(self.workdir, limits.settings(self.workdir))
        self._lock = threading.Lock()
        self.choices = self._choices()

    def close(self) -> None:
        self._con.close()
        shutil.rmtree(self._spill, ignore_errors=True)

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        """The result as dicts; interrupted after QUERY_SECONDS."""
        with self._lock:
            timer = threading.Timer(QUERY_SECONDS, self._con.interrupt)
            timer.start()
            try:
                cursor = self._con.execute(sql, params or [])
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
            finally:
                timer.cancel()

    def _choices(self) -> Choices:
        found = self.rows(
            "SELECT source, lang, drop_reason, license, count(*) AS n FROM segments GROUP BY ALL"
        )

        def values(column: str) -> list[str]:
            return sorted({r[column] for r in found if r[column] is not None})

        reasons = values("drop_reason")
        ordered = [r for r in DROP_REASONS if r in reasons] + [
            r for r in reasons if r not in DROP_REASONS
        ]
        return Choices(values("source"), values("lang"), ordered, values("license"), found)

    def segments(self, query: SegmentQuery) -> SegmentPage:
        """One page of segments and how many match, through `vaglio sql`'s read-only check."""
        conditions, params = _conditions(query)
        where = " AND ".join(conditions) or "true"
        order = ""
        if query.sort:
            if query.sort not in SEGMENT_COLUMNS:
                raise QueryError(f"cannot sort by {query.sort!r}: not a column of segments")
            direction = "DESC" if query.desc else "ASC"
            order = f'ORDER BY "{query.sort}" {direction} NULLS LAST, segment_id'
        columns = ", ".join(f'"{c}"' for c in TABLE_COLUMNS)
        offset = (max(query.page, 1) - 1) * PAGE_SIZE
        page_sql = (
            f"SELECT {columns} FROM segments WHERE {where} {order} "
            f"LIMIT {PAGE_SIZE} OFFSET {offset}"
        )
        count_sql = f"SELECT count(*) AS n FROM segments WHERE {where}"
        if query.where.strip():  # on its own first, so that a statement after it is named
            self._checked(f"SELECT 1 FROM segments WHERE\n{query.where}", [], run=False)
        rows = self._checked(page_sql, params)
        if query.text or query.where.strip():
            total = self._checked(count_sql, params)[0]["n"]
        else:
            total = self.choices.count(query)
        return SegmentPage(rows, total, query)

    def _checked(self, sql: str, params: list, run: bool = True) -> list[dict]:
        """The rows of `sql` once `vaglio sql`'s check passed it (with `run`, else none)."""
        try:
            with self._lock:
                check_read_only(self._con, sql)
            return self.rows(sql, params) if run else []
        except ReadOnlyError as error:
            raise QueryError(str(error)) from None
        except duckdb.PermissionException as error:
            raise QueryError(
                "refused: only the workdir's views can be queried "
                f"({str(error).splitlines()[0]})"
            ) from None
        except duckdb.Error as error:
            raise QueryError(f"SQL error: {str(error).splitlines()[0]}") from None

    def segment(self, segment_id: str) -> dict | None:
        found = self.rows("SELECT * FROM segments_all WHERE segment_id = ?", [segment_id])
        return found[0] if found else None

    def neighbours(self, recording_id: str, segment_id: str, around: int = 3) -> list[dict]:
        """The segments of a recording just before and after `segment_id`, itself included."""
        rows = self.rows(
            'SELECT segment_id, "offset", duration, drop_reason, text FROM segments '
            'WHERE recording_id = ? ORDER BY "offset"',
            [recording_id],
        )
        at = next((i for i, r in enumerate(rows) if r["segment_id"] == segment_id), 0)
        return rows[max(0, at - around) : at + around + 1]

    def drop_samples(self, per_reason: int, seed: int) -> dict[str, tuple[int, list[dict]]]:
        """Reason -> (dropped segments, a sample of them), in the order rules are checked; the
        sample is fixed for a seed, so a link to it shows the same rows."""
        counts = {
            r["drop_reason"]: r["n"]
            for r in self.rows(
                "SELECT drop_reason, count(*) AS n FROM segments "
                "WHERE drop_reason IS NOT NULL GROUP BY ALL"
            )
        }
        rows = self.rows(
            "SELECT * EXCLUDE (n) FROM (SELECT segment_id, drop_reason, lang, duration, "
            "text_pass1, text, pass_wer, row_number() OVER (PARTITION BY drop_reason "
            "ORDER BY hash(segment_id, ?), segment_id) AS n FROM segments "
            "WHERE drop_reason IS NOT NULL) WHERE n <= ? ORDER BY drop_reason, segment_id",
            [seed, per_reason],
        )
        return {
            reason: (counts[reason], [r for r in rows if r["drop_reason"] == reason])
            for reason in self.choices.drop_reasons
            if reason in counts
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

    def hours_by_source_and_language(self) -> list[dict]:
        return self.rows(
            "SELECT source, lang, count(*) AS segments, sum(duration) / 3600 AS hours, "
            "coalesce(sum(duration) FILTER (drop_reason IS NULL), 0) / 3600 AS kept_hours "
            "FROM segments GROUP BY ALL ORDER BY source, lang NULLS LAST"
        )

    def licences(self) -> list[dict]:
        return self.rows(
            "SELECT license, any_value(attribution) AS attribution, count(*) AS segments, "
            "count(*) FILTER (drop_reason IS NULL) AS kept, coalesce(sum(duration) FILTER "
            "(drop_reason IS NULL), 0) / 3600 AS kept_hours FROM segments "
            "GROUP BY license ORDER BY license"
        )


def _conditions(query: SegmentQuery) -> tuple[list[str], list]:
    """SQL conditions with `?` parameters for every filter; the typed WHERE goes in as typed,
    on lines of its own so that a `--` comment in it ends with it."""
    conditions: list[str] = []
    params: list = []
    for column in ("source", "lang", "license"):
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
