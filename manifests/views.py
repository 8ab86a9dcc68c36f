"""DuckDB views over a workdir's Parquet manifests: what `vaglio sql` queries.

Views read the Parquet files in place (nothing is copied) and only the shards of the latest
plan (`<workdir>/shards.json`), so a source removed from the catalog drops out of SQL.

The files reach DuckDB as Arrow datasets opened here, not as paths, so the connection can be
cut off from the file system entirely: once the views exist, external access is switched off
and the configuration locked. No statement typed into `vaglio sql`, whatever wraps it, can then
write or read a file, attach a database or install an extension. (DuckDB's `allowed_paths`
would not do: a path allowed for reading may also be overwritten by `COPY ... TO`.)

A caller that runs only statements of its own (the report, the explorer's pages) may open the
same views unsealed, read by DuckDB's own Parquet reader: about ten times faster than the Arrow
scan on a large workdir, since DuckDB reads only the pages a query needs and keeps strings
dictionary-encoded. Text typed by a user never goes there.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.schemas import (
    MANIFEST,
    RECORDINGS,
    SEGMENTS,
    SOURCES,
    SPEAKER_CLUSTERS,
    SPEAKERS,
    VOICES,
)

OVERALL = "overall"
"""The `source` of the `speech_coverage` row that sums every source."""

SHARD_LIST = "shards.json"
SURVEY_DIR = "survey"
SOURCES_TABLE = "sources.parquet"
SPEAKER_CLUSTERS_FILE = "speaker_clusters.parquet"
VOICES_KIND = ".voices"
"""What the `speakers` stage writes beside each shard: `<shard>.voices.parquet`."""
MANIFEST_ROWS = "_segments_files"
"""The shard stage's rows alone, which `segments_all` joins to the speakers stage's: a query
that needs no speaker column reads them here without paying for the joins."""
CLUSTER_ROWS = "_clusters_files"
"""`speaker_clusters.parquet` alone: splits and clusters per recording, without the `speakers`
view's joins to the voices and the manifest."""

SEGMENT_COLUMNS = (
    "segment_id",
    "source",
    "recording_id",
    "offset",
    "duration",
    "lang",
    "lang_prob",
    "lang_doubt",
    "text",
    "license",
    "attribution",
    "obligations",
    "drop_reason",
    "shard",
    "text_pass1",
    "pass_wer",
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_ovrl",
    "snr_db",
    "text_asr",
    "pnc_status",
    "speaker",
    "speaker_share",
    "n_speakers",
    "speaker_cluster",
    "split",
    "words",
    "words_missing",
    "text_written",
    "itn_status",
)


# Speech coverage: how much of the speech the VAD heard lies inside a row (kept or dropped,
# every row has its text or its reason). Rows of a recording do not overlap; `least` keeps a
# region from counting more than its own length should two ever touch.
_SPEECH_COVERAGE = """
CREATE VIEW speech_coverage AS
WITH covered AS (
    SELECT v.source, v."end" - v.start AS speech_s, least(v."end" - v.start, coalesce(sum(
        greatest(0, least(v."end", s."offset" + s.duration) - greatest(v.start, s."offset"))
    ), 0)) AS covered_s
    FROM speech v LEFT JOIN {manifest} s ON s.recording_id = v.recording_id
        AND s."offset" < v."end" AND s."offset" + s.duration > v.start
    GROUP BY v.source, v.recording_id, v.start, v."end"
)
SELECT coalesce(source, '{overall}') AS source, sum(speech_s) / 3600 AS speech_hours,
    sum(covered_s) / 3600 AS covered_hours,
    CASE WHEN sum(speech_s) > 0 THEN sum(covered_s) / sum(speech_s) END AS coverage
FROM covered GROUP BY GROUPING SETS ((source), ()) ORDER BY source IS NULL, source
"""


# Each segment with its speaker (the `speakers` stage) and the corpus-wide facts about that
# speaker and recording (`speaker_clusters.parquet`): `split` is the one the default ratios
# give, null where the recording has no kept speech.
_SEGMENTS_ALL = """
CREATE VIEW segments_all AS
SELECT m.*, s.speaker, s.speaker_share, s.n_speakers, s.speech_s AS speaker_speech_s,
    s.embedding AS voice,
    c.speaker_cluster, g.split_group, g.split
FROM {manifest} m
LEFT JOIN {speakers} s ON s.segment_id = m.segment_id
LEFT JOIN {clusters} c ON c.recording_id = m.recording_id AND c.speaker = s.speaker
LEFT JOIN (SELECT DISTINCT recording_id, split_group, split FROM {clusters}) g
    ON g.recording_id = m.recording_id
"""

# One row per speaker of a recording: its speech, cluster and split.
_SPEAKERS = """
CREATE VIEW speakers AS
SELECT m.source, c.recording_id, c.speaker, c.speaker_cluster, c.split_group, c.split,
    v.runs, v.speech_s / 3600 AS speech_hours
FROM {clusters} c
LEFT JOIN {voices} v ON v.recording_id = c.recording_id AND v.speaker = c.speaker
LEFT JOIN (SELECT DISTINCT recording_id, source FROM {manifest}) m
    ON m.recording_id = c.recording_id
ORDER BY c.recording_id, c.speaker
"""


def current_shards(workdir: Path) -> list[str]:
    path = Path(workdir) / SHARD_LIST
    return json.loads(path.read_text()) if path.exists() else []


def _files(workdir: Path, stage: str, kind: str = "") -> list[Path]:
    """The current shards' outputs of `stage`, or the files of `kind` it wrote beside them."""
    files = (Path(workdir) / stage / f"{s}{kind}.parquet" for s in current_shards(workdir))
    return [f for f in files if f.exists()]


_SQL_TYPES = {
    "bool": "BOOLEAN",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "string": "VARCHAR",
    "large_string": "VARCHAR",
    "binary": "BLOB",
    "large_binary": "BLOB",
}


def _sql_type(arrow: pa.DataType) -> str:
    """DuckDB's spelling of an Arrow type (those the manifests' schemas use)."""
    if pa.types.is_map(arrow):
        return f"MAP({_sql_type(arrow.key_type)}, {_sql_type(arrow.item_type)})"
    if pa.types.is_struct(arrow):
        fields = (arrow.field(i) for i in range(arrow.num_fields))
        return "STRUCT(" + ", ".join(f"{_quoted(f.name)} {_sql_type(f.type)}" for f in fields) + ")"
    if pa.types.is_fixed_size_list(arrow):
        return f"{_sql_type(arrow.value_type)}[{arrow.list_size}]"
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return f"{_sql_type(arrow.value_type)}[]"
    if str(arrow) not in _SQL_TYPES:
        raise TypeError(f"no DuckDB type for the Arrow type {arrow}")
    return _SQL_TYPES[str(arrow)]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_empty(con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema) -> None:
    """An empty table of `schema`, declared in SQL: handed an Arrow object, DuckDB imports
    pandas, a fifth of a second of the explorer's start."""
    columns = ", ".join(f"{_quoted(f.name)} {_sql_type(f.type)}" for f in schema)
    con.execute(f"CREATE TABLE {table} ({columns})")


def _register(
    con: duckdb.DuckDBPyConnection,
    name: str,
    files: list[Path],
    schema: pa.Schema,
    sealed: bool = True,
) -> str:
    """Register `files` as one table (columns united by name): an Arrow dataset when the
    connection will be `sealed`, else a view over DuckDB's Parquet reader; an empty table of
    `schema` when there are none. Return the name to select from.

    An unreadable file raises `duckdb.IOException`, the error DuckDB itself gives for one, so
    callers handle a single kind.
    """
    table = f"_{name}_files"
    if not files and sealed:
        con.register(table, schema.empty_table())
        return table
    if not files:  # a table, not a registered object, so the connection's cursors see it
        _create_empty(con, table, schema)
        return table
    schemas = []
    for path in files:
        try:
            schemas.append(pq.read_schema(path))
        except (OSError, pa.ArrowException) as error:
            raise duckdb.IOException(f"{path}: not a readable Parquet file ({error})") from None
    if not sealed:
        paths = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        # The declared columns that no file has yet read as null, by a union with an empty
        # table of them; only then, since a union hides the files' row counts from DuckDB.
        missing = [f for f in schema if not any(f.name in s.names for s in schemas)]
        declared = ""
        if missing:
            _create_empty(con, f"{table}_declared", pa.schema(missing))
            declared = f" UNION ALL BY NAME SELECT * FROM {table}_declared"
        # United by name only where the files differ: DuckDB then reads every file's footer
        # each time a view over them is bound, not the first file's alone.
        union = any(not s.equals(schemas[0]) for s in schemas[1:])
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{paths}], union_by_name = {union})"
            + declared
        )
        return table
    import pyarrow.dataset as ds  # here: it imports pandas, which the unsealed views never need

    # with the declared schema too: a column the files predate reads as null
    united = pa.unify_schemas([*schemas, schema], promote_options="permissive")
    con.register(table, ds.dataset([str(f) for f in files], schema=united, format="parquet"))
    return table


def _seal(con: duckdb.DuckDBPyConnection) -> None:
    """No file, database or extension is reachable from here on, and no setting can undo it."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def connect(
    workdir: Path, settings: dict[str, str] | None = None, sealed: bool = True
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the views `recordings`, `segments`, `segments_all`, `drops`
    (segments and hours per drop reason and language), `speakers` (one row per speaker of a
    recording, with its cluster and split), `translations` (one row per segment and target
    language), `speech` (every VAD speech region), `speech_coverage` (per source and overall)
    and `sources` (the latest `vaglio survey`), cut off from the file system unless not
    `sealed` (see the module docstring). `settings` are DuckDB's (memory_limit…), locked with
    the rest."""
    workdir = Path(workdir)
    con = duckdb.connect(":memory:", config=settings or {})
    if not sealed:  # every view and query would read every file's footer again
        con.execute("SET parquet_metadata_cache = true")

    def register(name: str, files: list[Path], schema: pa.Schema) -> str:
        return _register(con, name, files, schema, sealed)

    recordings = register("recordings", _files(workdir, "standardise"), RECORDINGS)
    duplicates = workdir / "duplicates.parquet"
    duplicate_join = (
        f"LEFT JOIN {register('duplicates', [duplicates], pa.schema([]))} d USING (recording_id)"
        if duplicates.exists()
        else "LEFT JOIN (SELECT NULL::VARCHAR AS recording_id, NULL::VARCHAR AS duplicate_of) d"
        " USING (recording_id)"
    )
    con.execute(
        f"CREATE VIEW recordings AS SELECT r.* EXCLUDE (audio, audio_in), d.duplicate_of "
        f"FROM {recordings} r {duplicate_join}"
    )
    manifest = register("segments", _files(workdir, "shard"), MANIFEST)  # named MANIFEST_ROWS
    speakers = register("speakers", _files(workdir, "speakers"), SPEAKERS)
    clusters_file = workdir / SPEAKER_CLUSTERS_FILE
    clusters = register(  # named CLUSTER_ROWS
        "clusters", [clusters_file] if clusters_file.exists() else [], SPEAKER_CLUSTERS
    )
    con.execute(_SEGMENTS_ALL.format(manifest=manifest, speakers=speakers, clusters=clusters))
    voices = register("voices", _files(workdir, "speakers", VOICES_KIND), VOICES)
    con.execute(_SPEAKERS.format(clusters=clusters, voices=voices, manifest=manifest))
    columns = ", ".join(f'"{c}"' for c in SEGMENT_COLUMNS)
    con.execute(f"CREATE VIEW segments AS SELECT {columns} FROM segments_all")
    # Views that need no speaker column read the shard stage's rows: the joins of
    # `segments_all` would cost a pass over the speakers' rows each time.
    con.execute(
        "CREATE VIEW drops AS SELECT drop_reason, lang, count(*) AS segments, "
        f"sum(duration) / 3600 AS hours FROM {manifest} WHERE drop_reason IS NOT NULL "
        "GROUP BY drop_reason, lang ORDER BY segments DESC, drop_reason, lang"
    )
    # Lists are unnested in the select list: a lateral `FROM t, unnest(...)` is planned as a
    # join that first copies every column of every row (75 s against 0.4 s on 10 M segments).
    con.execute(
        "CREATE VIEW translations AS SELECT segment_id, source, source_lang, t.lang AS lang, "
        "t.text, t.reason, t.qe_score, t.answer, source_text FROM (SELECT segment_id, source, "
        f"lang AS source_lang, text AS source_text, unnest(translations) AS t FROM {manifest})"
    )
    speech = register("speech", _files(workdir, "segment"), SEGMENTS)
    con.execute(
        'CREATE VIEW speech AS SELECT source, recording_id, r.start, r."end" FROM '
        f"(SELECT source, recording_id, unnest(speech_regions) AS r FROM {speech})"
    )
    con.execute(_SPEECH_COVERAGE.format(manifest=manifest, overall=OVERALL))
    survey = workdir / SURVEY_DIR / SOURCES_TABLE
    sources = register("sources", [survey] if survey.exists() else [], SOURCES)
    con.execute(f"CREATE VIEW sources AS SELECT * FROM {sources}")
    if sealed:
        _seal(con)
    return con


def dataset_files(workdir: Path) -> list[str]:
    """The dataset files that hold kept rows, relative to `workdir`, as the manifests name
    them: what `dataset/data/` must hold, no more (`pipeline.stages.shard`)."""
    with connect(workdir) as con:
        found = con.execute(
            "SELECT DISTINCT shard FROM segments WHERE shard IS NOT NULL ORDER BY shard"
        ).fetchall()
    return [name for (name,) in found]
