"""`vaglio sql` as a user types it: formats, the required columns, and refusal of writes."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from manifests.views import SEGMENT_COLUMNS
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


@pytest.mark.parametrize(
    "query",
    [
        "DROP VIEW segments",
        "CREATE TABLE x AS SELECT * FROM segments",
        "COPY (SELECT * FROM segments) TO '/tmp/vaglio-leak.csv'",
        "SELECT 1; DELETE FROM segments",
        "ATTACH '/tmp/other.db'",
    ],
)
def test_queries_that_write_are_refused(curated, query):
    workdir, _ = curated
    result = vaglio_sql(workdir, query)
    assert result.exit_code == 2
    assert "refused" in result.output or "exactly one" in result.output


def test_a_broken_query_is_a_clear_error_not_a_traceback(curated):
    workdir, _ = curated
    result = vaglio_sql(workdir, "SELECT nonexistent FROM segments")
    assert result.exit_code == 2
    assert "SQL error" in result.output and "Traceback" not in result.output


def test_an_empty_workdir_has_empty_views(tmp_path):
    result = vaglio_sql(tmp_path, "SELECT count(*) AS n FROM segments", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"n": 0}]
