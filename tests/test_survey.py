"""`vaglio survey`: licence verdicts and hours per language, from headers and metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.query.sql import run_query
from pipeline.sources.catalog import CatalogError, load_catalog
from pipeline.sources.survey import (
    compliant_hours,
    compliant_totals,
    language_coverage,
    survey_sources,
    write_survey,
)


def write_catalog(tmp_path: Path, sources: list[dict]) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"sources": sources}))
    return path


def metadata(name: str, license: str, hours, languages: list[str], **extra) -> dict:
    return {"name": name, "kind": "metadata", "license": license, "attribution": name,
            "languages": languages, "hours": hours, **extra}  # fmt: skip


def test_metadata_sources_give_hours_per_language_or_together(tmp_path):
    catalog = write_catalog(
        tmp_path,
        [
            metadata("libri", "CC BY 4.0", 360, ["en"], labelled=True),
            metadata("split", "CC0 1.0", {"en": 10, "it": 5.5}, ["en", "it"]),
            metadata("multi", "CC 0", 100, ["de", "fr"], labelled=False),
            metadata("closed", "CC BY-NC-SA 4.0", 50, ["en"]),
        ],
    )
    table = survey_sources(load_catalog(catalog))
    rows = {(r["source"], r["language"]): r for r in table.to_pylist()}
    assert rows[("libri", "en")]["hours"] == 360 and rows[("libri", "en")]["labelled"] is True
    assert rows[("split", "it")]["hours"] == 5.5
    assert rows[("multi", "mul")]["languages"] == ["de", "fr"]  # not split by guesswork
    closed = rows[("closed", "en")]
    assert not closed["allowed"] and "non-commercial" in closed["reason"]
    assert compliant_hours(table) == {"en": 370.0, "mul": 100.0, "it": 5.5}


@pytest.mark.parametrize(
    ("hours", "message"),
    [(None, "needs its hours"), ({"es": 3}, "not one of the declared"), ({"en": -1}, "finite")],
)
def test_malformed_metadata_hours_name_the_field(tmp_path, hours, message):
    entry = metadata("bad", "CC0 1.0", hours, ["en"])
    with pytest.raises(CatalogError, match=message) as error:
        load_catalog(write_catalog(tmp_path, [entry]))
    assert "bad" in str(error.value) and "hours" in str(error.value)


def test_local_sources_are_measured_from_headers(demo_catalog, tmp_path):
    table = survey_sources(load_catalog(demo_catalog))
    (radio,) = [r for r in table.to_pylist() if r["source"] == "open-radio"]
    assert radio["language"] == "mul" and radio["allowed"]
    assert radio["unreadable_files"] == 1  # corrupt.mp3
    assert 5 / 60 < radio["hours"] < 10 / 60  # the demo is a few minutes long
    folder = write_survey(table, tmp_path / "work")
    assert (folder / "hours_by_language.png").read_bytes()[:4] == b"\x89PNG"
    assert "| open-radio | CC BY 4.0 | CC-BY-4.0 | yes |" in (folder / "report.md").read_text()
    rows = run_query(tmp_path / "work", "SELECT source, allowed FROM sources ORDER BY source")
    assert rows.to_pylist() == [
        {"source": "nc-lectures", "allowed": False},
        {"source": "open-radio", "allowed": True},
        {"source": "read-aloud", "allowed": True},
    ]


def test_the_mosel_catalog_surveys_cleanly_and_reproduces_its_totals(tmp_path):
    """Every MOSEL source is open; the published hours add up to MOSEL's 950 k hours (505.7 k
    transcribed), without its own pseudo-label release, which labels audio already listed."""
    catalog = tmp_path / "mosel.yaml"
    result = CliRunner().invoke(app, ["mosel-catalog", "-o", str(catalog)])  # the shipped list
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "'fu' read as 'fi'" in said and "left out" in said
    table = survey_sources(load_catalog(catalog))
    assert all(table["allowed"].to_pylist())
    totals = compliant_totals(table)
    assert totals["labelled"] == 505_726 and totals["unlabelled"] == 444_467
    assert sum(compliant_hours(table).values()) == 950_193
    coverage = language_coverage(table)
    assert len(coverage) == 24  # the EU's official languages, 'fu' read as Finnish
    assert coverage["en"][0] == 57706 + 585 + 360 + 18 + 44  # English-only sources
    voxpopuli = {r["source"] for r in table.to_pylist() if r["source"].startswith("voxpopuli")}
    assert voxpopuli == {"voxpopuli-labelled", "voxpopuli-unlabelled"}


def test_survey_command_prints_verdicts_and_totals(tmp_path):
    catalog = write_catalog(
        tmp_path,
        [metadata("libri", "CC BY 4.0", 360, ["en"]), metadata("nd", "CC BY-ND 4.0", 9, ["it"])],
    )
    result = CliRunner().invoke(app, ["survey", str(catalog), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "allowed" in result.output and "refused" in result.output
    said = " ".join(result.output.split())
    assert "compliant hours: 360.00" in said and "by language: en 360.00" in said
    assert (tmp_path / "w" / "survey" / "report.md").exists()
