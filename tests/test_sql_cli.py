"""`vaglio sql` as a user types it: formats, the required columns, and refusal of writes."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from manifests.views import SEGMENT_COLUMNS, SHARD_LIST
from pipeline.cli import app

runner = CliRunner()


def vaglio_sql(workdir, query, *options):
    return runner.invoke(app, ["sql", query, "--workdir", str(workdir), *options])


def test_segments_view_has_the_documented_columns(curated):
    workdir, _ = curated
    result = vaglio_sql(workdir, "SELECT * FROM segments LIMIT 1", "--format", "csv")
    assert result.exit_code == 0, result.output
    header = next(csv.reader(io.StringIO(result.stdout)))
    assert tuple(header) == SEGMENT_COLUMNS


def test_json_output_answers_a_licence_question(curated):
    workdir, _ = curated
    query = (
        "SELECT license, attribution, count(*) AS n FROM segments "
        "WHERE drop_reason IS NULL GROUP BY ALL ORDER BY license"
    )
    result = vaglio_sql(workdir, query, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["license"] for row in rows] == ["CC-BY-4.0", "CC0-1.0"]
    assert all(row["n"] > 0 and "vaglio demo corpus" in row["attribution"] for row in rows)


def _stored_bytes(workdir):
    return {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}


# Each query and the statement type its refusal must name; `{shard}` is a manifest shard.
WRITES = [
    ("DROP VIEW segments", "DROP"),
    ("CREATE TABLE x AS SELECT * FROM segments", "CREATE"),
    ("CREATE MACRO m(x) AS x", "CREATE"),
    ("COPY (SELECT * FROM segments) TO '{shard}'", "COPY"),
    ("COPY (SELECT 'x' AS x) TO '{shard}' (FORMAT parquet, USE_TMP_FILE false)", "COPY"),
    ("EXPLAIN ANALYZE COPY (SELECT 'x' AS x) TO '{shard}' (FORMAT parquet)", "COPY"),
    ("/* why not */ explain (format json) COPY segments_all TO '{shard}'", "COPY"),
    ("EXPLAIN ANALYZE INSTALL httpfs", "INSTALL"),
    ("LOAD httpfs", "LOAD"),
    ("EXPORT DATABASE '{workdir}/export'", "EXPORT"),
    ("SELECT 1; DELETE FROM segments", "DELETE"),
    ("SELECT 1; COPY (SELECT 1) TO '{shard}'", "COPY"),
    ("WITH x AS (SELECT 1) INSERT INTO segments SELECT * FROM x", "INSERT"),
    ("ATTACH '{workdir}/other.db'", "ATTACH"),
    ("SET enable_external_access = true", "SET"),
    ("RESET enable_external_access", "RESET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("CALL pragma_version()", "CALL"),
    ("PREPARE p AS SELECT 1", "PREPARE"),
]


def test_nothing_gets_written_through_sql_whatever_wraps_the_write(curated):
    workdir, _ = curated
    shard = next((workdir / "shard").glob("*.parquet"))
    before = _stored_bytes(workdir)
    for query, kind in WRITES:
        result = vaglio_sql(workdir, query.format(shard=shard, workdir=workdir))
        assert result.exit_code == 2, (query, result.output)
        refusal = " ".join(result.output.split())
        assert f"refused: {kind} statements" in refusal, (query, refusal)
    assert _stored_bytes(workdir) == before


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('{shard}')",
        "SELECT count(*) FROM glob('{workdir}/*')",
    ],
)
def test_files_are_out_of_reach_even_inside_the_workdir(curated, query):
    workdir, _ = curated
    shard = next((workdir / "shard").glob("*.parquet"))
    result = vaglio_sql(workdir, query.format(shard=shard, workdir=workdir))
    assert result.exit_code == 2
    assert "refused: only the workdir's views" in " ".join(result.output.split())


def test_reading_statements_still_run(curated):
    workdir, _ = curated
    for query in ("EXPLAIN ANALYZE SELECT count(*) FROM segments", "EXPLAIN (SELECT 1)",
                  "DESCRIBE segments"):  # fmt: skip
        result = vaglio_sql(workdir, query, "--format", "csv")
        assert result.exit_code == 0, (query, result.output)


def test_a_broken_query_is_a_clear_error_not_a_traceback(curated):
    workdir, _ = curated
    result = vaglio_sql(workdir, "SELECT nonexistent FROM segments")
    assert result.exit_code == 2
    assert "SQL error" in result.output and "Traceback" not in result.output


def test_a_workdir_without_a_run_is_named_not_answered_with_zeros(tmp_path):
    missing = vaglio_sql(tmp_path / "nowhere", "SELECT count(*) FROM segments")
    assert missing.exit_code == 2
    assert "no such workdir" in " ".join(missing.output.split())
    empty = vaglio_sql(tmp_path, "SELECT count(*) AS n FROM segments")
    assert empty.exit_code == 2
    assert "holds no curation run" in " ".join(empty.output.split()) and empty.stdout == ""


BIG_JOIN = "SELECT count(*) FROM range(400000000) a JOIN range(400000000) b ON a.range = b.range"


def test_a_huge_join_spills_under_the_workdir_within_its_limit_and_ctrl_c_stops_it(tmp_path):
    """DuckDB's defaults: 80 % of RAM, spill files in the caller's `./.tmp`, and Ctrl-C only
    seen once the query ends (23 s for this join)."""
    workdir, elsewhere = tmp_path / "work", tmp_path / "caller"
    workdir.mkdir()
    elsewhere.mkdir()
    (workdir / SHARD_LIST).write_text("[]")
    command = ["sql", BIG_JOIN, "-w", str(workdir), "--memory-limit", "200MB"]
    query = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *command],
        cwd=elsewhere,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        stderr=subprocess.PIPE,
        text=True,
        # as a command in a terminal's foreground: a test run started in the background (`make
        # test &`, CI) ignores SIGINT, and a child would inherit that and never see Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    spill = workdir / ".sql-spill"
    deadline = time.monotonic() + 120
    while not any(spill.glob("*.tmp")) and query.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert any(spill.glob("*.tmp")), "the join never spilled under the workdir"
    peak = psutil.Process(query.pid).memory_info().rss
    query.send_signal(signal.SIGINT)
    asked = time.monotonic()
    _, said = query.communicate(timeout=30)
    assert time.monotonic() - asked < 5
    assert query.returncode == 130 and "interrupted" in said, said
    assert peak < 1.5 * 2**30
    assert not list(elsewhere.iterdir())  # nothing spilled where the caller stands
    assert not spill.exists()  # the spill files went with the query
