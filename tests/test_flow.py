"""The Prefect flow runs the same library: one task per shard per stage, resumable."""

from __future__ import annotations

import shutil

import pytest
import yaml

from manifests.views import current_shards
from pipeline.config import CurateConfig
from pipeline.query.sql import run_query
from pipeline.run.curate import build_stages

# Outcome depends on model numerics: CI runs these again under the other CTranslate2 backends.
pytestmark = pytest.mark.numerics


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for every flow test (starting one takes ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


def test_flow_curates_and_a_second_run_skips_every_shard(prefect_harness, demo_catalog, tmp_path):
    from flows.curate import run_curate_flow

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("en-03.wav", "it-04.wav", "corrupt.mp3"):
        shutil.copy(demo_catalog.parent / "open-radio" / name, corpus / name)
    catalog = tmp_path / "catalog.yaml"
    source = {
        "name": "small",
        "kind": "local",
        "path": "corpus",
        "license": "CC0 1.0",
        "attribution": "test",
        "languages": ["en", "it"],
    }
    catalog.write_text(yaml.safe_dump({"sources": [source]}))
    config = CurateConfig(files_per_shard=2)

    first = run_curate_flow(catalog, tmp_path / "work", config)
    shards = current_shards(tmp_path / "work")
    assert 1 <= len(shards) <= 3  # shards end where file ids hash to a boundary
    assert len(first.outcomes) == len(build_stages(config)) * len(shards)
    assert not any(o.skipped for o in first.outcomes)
    rows = run_query(
        tmp_path / "work",
        "SELECT recording_id, any_value(lang) AS lang, string_agg(text, ' ') AS text "
        "FROM segments WHERE drop_reason IS NULL GROUP BY recording_id ORDER BY recording_id",
    )
    assert rows["lang"].to_pylist() == ["en", "it"]
    assert all(len(t.split()) > 5 for t in rows["text"].to_pylist())

    second = run_curate_flow(catalog, tmp_path / "work", config)
    assert all(o.skipped for o in second.outcomes)


def test_the_survey_flow_surveys_each_source_as_a_task(prefect_harness, tmp_path):
    from flows.survey import survey_flow

    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "broken.wav").write_bytes(b"RIFF")
    catalog = tmp_path / "catalog.yaml"
    common = {"attribution": "test", "languages": ["en"]}
    sources = [
        {"name": "open", "kind": "metadata", "license": "CC BY 4.0", "hours": 12.5, **common},
        {"name": "closed", "kind": "metadata", "license": "CC BY-NC 4.0", "hours": 3, **common},
        {"name": "files", "kind": "local", "path": "audio", "license": "CC0", **common},
    ]
    catalog.write_text(yaml.safe_dump({"sources": sources}))
    folder = survey_flow(catalog, tmp_path / "work")
    rows = {
        r["source"]: r for r in run_query(tmp_path / "work", "SELECT * FROM sources").to_pylist()
    }
    assert (rows["open"]["allowed"], rows["open"]["hours"]) == (True, 12.5)
    assert not rows["closed"]["allowed"]
    assert (rows["files"]["files"], rows["files"]["unreadable_files"]) == (1, 1)
    assert (folder / "report.md").exists()
