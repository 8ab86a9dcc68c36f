"""DuckDB views over a workdir's Parquet manifests: what `vaglio sql` queries.

Views read the Parquet files in place (nothing is copied) and only the shards of the latest
plan (`<workdir>/shards.json`), so a source removed from the catalog drops out of SQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa

from manifests.schemas import MANIFEST, RECORDINGS, SOURCES

SHARD_LIST = "shards.json"
SURVEY_DIR = "survey"
SOURCES_TABLE = "sources.parquet"

SEGMENT_COLUMNS = (
    "segment_id",
    "source",
    "recording_id",
    "offset",
    "duration",
    "lang",
    "lang_prob",
    "text",
    "license",
    "attribution",
    "obligations",
    "drop_reason",
    "shard",
    "text_pass1",
    "pass_wer",
    "text_asr",
    "pnc_status",
)


def current_shards(workdir: Path) -> list[str]:
    path = Path(workdir) / SHARD_LIST
    return json.loads(path.read_text()) if path.exists() else []


def _files(workdir: Path, stage: str) -> list[str]:
    files = (Path(workdir) / stage / f"{s}.parquet" for s in current_shards(workdir))
    return [str(f) for f in files if f.exists()]


def _source_sql(
    con: duckdb.DuckDBPyConnection, name: str, files: list[str], schema: pa.Schema
) -> str:
    """A FROM clause over `files`, or over an empty table of `schema` when there are none."""
    if files:
        return "read_parquet([{}], union_by_name=true)".format(
            ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        )
    con.register(f"_empty_{name}", schema.empty_table())
    return f"_empty_{name}"


def connect(workdir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the views `recordings`, `segments`, `segments_all`, `drops`
    (segments and hours per drop reason and language), `translations` (one row per segment
    and target language) and `sources` (the latest `vaglio survey`)."""
    workdir = Path(workdir)
    con = duckdb.connect(":memory:")
    recordings = _source_sql(con, "recordings", _files(workdir, "standardise"), RECORDINGS)
    duplicates = workdir / "duplicates.parquet"
    duplicate_join = (
        f"LEFT JOIN read_parquet('{duplicates}') d USING (recording_id)"
        if duplicates.exists()
        else "LEFT JOIN (SELECT NULL::VARCHAR AS recording_id, NULL::VARCHAR AS duplicate_of) d"
        " USING (recording_id)"
    )
    con.execute(
        f"CREATE VIEW recordings AS SELECT r.* EXCLUDE (audio, audio_in), d.duplicate_of "
        f"FROM {recordings} r {duplicate_join}"
    )
    manifest = _source_sql(con, "segments", _files(workdir, "shard"), MANIFEST)
    con.execute(f"CREATE VIEW segments_all AS SELECT * FROM {manifest}")
    columns = ", ".join(f'"{c}"' for c in SEGMENT_COLUMNS)
    con.execute(f"CREATE VIEW segments AS SELECT {columns} FROM segments_all")
    con.execute(
        "CREATE VIEW drops AS SELECT drop_reason, lang, count(*) AS segments, "
        "sum(duration) / 3600 AS hours FROM segments WHERE drop_reason IS NOT NULL "
        "GROUP BY drop_reason, lang ORDER BY segments DESC, drop_reason, lang"
    )
    con.execute(
        "CREATE VIEW translations AS SELECT segment_id, source, lang AS source_lang, "
        "t.lang AS lang, t.text, t.reason, t.qe_score, t.answer, text AS source_text "
        "FROM segments_all, unnest(translations) AS u(t)"
    )
    survey = workdir / SURVEY_DIR / SOURCES_TABLE
    sources = _source_sql(con, "sources", [str(survey)] if survey.exists() else [], SOURCES)
    con.execute(f"CREATE VIEW sources AS SELECT * FROM {sources}")
    return con
