"""`vaglio publish`: the hub folder and its card, licences judged again at publish time, and a
real `huggingface_hub` upload to a stand-in hub that is killed halfway and resumed."""

from __future__ import annotations

import hashlib
import html
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
import yaml
from hub_server import HubServer
from huggingface_hub import DatasetCard
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.export.card import _hub_licenses
from pipeline.query.sql import run_query

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--max-file-mb", "0.3", "--min-file-mb", "0.1", "--row-group-mb", "0.1"]


def sql_counts(workdir, group: str = "lang") -> dict[str, int]:
    rows = run_query(
        workdir,
        f"SELECT {group} AS k, count(*) AS n FROM segments WHERE drop_reason IS NULL GROUP BY 1",
    ).to_pylist()
    return {r["k"]: r["n"] for r in rows}


def loaded_counts(folder: Path, config: str) -> int:
    loaded = datasets.load_dataset(str(folder), config)
    return sum(len(split) for split in loaded.values())


@pytest.fixture(scope="module")
def published(curated, tmp_path_factory):
    workdir, _ = curated
    out = tmp_path_factory.mktemp("published")
    result = runner.invoke(
        app,
        [
            "publish",
            "-w",
            str(workdir),
            "--repo-id",
            "me/demo",
            "--dry-run",
            "--out",
            str(out),
            *SMALL,
        ],
    )
    assert result.exit_code == 0, result.output
    return workdir, out, result.output


def test_dry_run_folder_loads_with_datasets_and_sql_row_counts(published):
    workdir, out, output = published
    assert "dry run: nothing uploaded" in output
    for lang, count in sql_counts(workdir).items():
        loaded = datasets.load_dataset(str(out), lang)
        assert sum(len(s) for s in loaded.values()) == count
        split = next(iter(loaded.values()))
        assert split.features["audio"] == datasets.Audio(sampling_rate=16_000)  # no cast needed
        raw = split.cast_column("audio", datasets.Audio(decode=False))[0]
        samples, rate = soundfile.read(io.BytesIO(raw["audio"]["bytes"]))
        assert rate == 16_000 and abs(len(samples) / rate - raw["duration"]) < 0.01
        decoded = split[0]["audio"].get_all_samples()  # datasets decodes it itself (torchcodec)
        assert decoded.sample_rate == 16_000
        assert np.allclose(decoded.data.numpy()[0], samples, atol=1e-4)
        assert raw["license"] and raw["attribution"] and raw["id"]
    files = sorted((out / "data").rglob("*.parquet"))
    assert len(list((out / "data" / "en").glob("train-*-of-*.parquet"))) > 5  # for workers
    for path in files:
        meta = pq.ParquetFile(path).metadata
        assert b"huggingface" in pq.read_schema(path).metadata
        assert all(meta.row_group(i).total_byte_size < 400_000 for i in range(meta.num_row_groups))


def test_card_holds_hub_metadata_licences_attribution_funnel_and_models(published):
    _workdir, out, _ = published
    card = DatasetCard.load(out / "README.md")
    hub_ids = set(_hub_licenses()["hub_ids"].values()) | {"other"}
    assert set(card.data.license) == {"cc-by-4.0", "cc0-1.0"} <= hub_ids
    assert card.data.language == ["en", "it"]
    assert card.data.task_categories == ["automatic-speech-recognition"]
    assert card.data.size_categories == ["n<1K"]
    covered = set()
    for config in card.data.configs:
        for entry in config["data_files"]:
            covered |= set(out.glob(entry["path"]))
    assert covered == set((out / "data").rglob("*.parquet"))  # every file, in one config
    body = card.text
    assert "vaglio demo corpus (espeak-ng), CC BY 4.0" in body  # the attribution CC BY asks for
    assert "[CC-BY-4.0](https://creativecommons.org/licenses/by/4.0/)" in body
    assert "| pass\\_disagreement |" in body and "| segments kept |" in body
    assert "faster-whisper:whisper-base" in body
    assert 'load_dataset("me/demo", "en")' in body
    assert "open-radio" in (out / "LICENSES.md").read_text()


def test_a_stricter_policy_at_publish_time_leaves_rows_out_and_isolates_share_alike(
    curated, tmp_path
):
    workdir, _ = curated
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "extends": "default",
                "rules": [
                    {"match": "CC0-1.0", "allowed": False, "reason": "no public-domain audio here"},
                    {
                        "match": "CC-BY-4.0",
                        "allowed": True,
                        "reason": "read as share-alike",
                        "obligations": ["attribution", "share-alike"],
                    },
                ],
            }
        )
    )
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "publish",
            "-w",
            str(workdir),
            "--repo-id",
            "me/demo",
            "--dry-run",
            "--out",
            str(out),
            "--policy",
            str(policy),
        ],
    )
    assert result.exit_code == 0, result.output
    cc0 = sql_counts(workdir, "license")["CC0-1.0"]
    assert f"not published: {cc0} rows of read-aloud under CC0-1.0: no public-domain" in (
        " ".join(result.output.split())
    )
    names = sorted(p.name for p in (out / "data").iterdir())
    assert names == ["en-sharealike", "it-sharealike"]
    published = pa.concat_tables(pq.read_table(p) for p in (out / "data").rglob("*.parquet"))
    assert "CC0-1.0" not in published["license"].to_pylist()
    card = (out / "README.md").read_text()
    assert "## Left out at publish time" in card and "(share-alike)" in card
    assert "attribution, share-alike |" in card  # obligations as the policy reads them now


def _translate_italian(workdir: Path) -> None:
    """Give every kept Italian row an English translation, in the manifest and dataset files."""
    for path in [*workdir.glob("shard/*.parquet"), *workdir.glob("dataset/data/*.parquet")]:
        table = pq.read_table(path)
        field = table.schema.field("translations")
        keys = [f.name for f in field.type.value_type]
        values = [
            [{k: None for k in keys} | {"lang": "en", "text": f"EN {text}"}]
            if lang == "it" and (keep is None)
            else existing
            for lang, text, keep, existing in zip(
                table["lang"].to_pylist(),
                table["text"].to_pylist(),
                table["drop_reason"].to_pylist()
                if "drop_reason" in table.column_names
                else [None] * len(table),
                table["translations"].to_pylist(),
            )
        ]
        column = pa.array(values, field.type)
        table = table.set_column(table.schema.get_field_index("translations"), field, column)
        pq.write_table(table.replace_schema_metadata(table.schema.metadata), path)


def test_translations_get_a_config_per_direction_and_nemo_lines_of_their_own(curated, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(curated[0], workdir)
    _translate_italian(workdir)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["publish", "-w", str(workdir), "--repo-id", "me/demo", "--dry-run", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    kept = run_query(
        workdir,
        "SELECT count(*) AS n FROM translations WHERE reason IS NULL "
        "AND source_lang = 'it' AND lang = 'en'",
    ).to_pylist()[0]["n"]
    assert kept == sql_counts(workdir)["it"] > 0
    assert loaded_counts(out, "it-en") == kept
    row = datasets.load_dataset(str(out), "it-en")["train"].remove_columns("audio")[0]
    assert row["translation"] == f"EN {row['text']}"
    assert (row["source_lang"], row["target_lang"]) == ("it", "en")
    assert DatasetCard.load(out / "README.md").data.task_categories[-1] == "translation"

    from pipeline.export.nemo_tarred import check_nemo_tarred

    result = runner.invoke(
        app,
        [
            "export",
            "nemo-tarred",
            "-w",
            str(workdir),
            "--out",
            str(tmp_path / "tarred"),
            "--no-check",
        ],
    )
    assert result.exit_code == 0, result.output
    entries = check_nemo_tarred(tmp_path / "tarred" / "train")
    ast = [e for e in entries if e.taskname == "ast"]
    assert ast and all(
        e.text.startswith("EN ") and (e.lang, e.source_lang) == ("en", "it") for e in ast
    )
    asr = {e.segment_id: e for e in entries if e.taskname == "asr"}
    assert all((e.samples == asr[e.segment_id].samples).all() for e in ast)  # one audio copy


def _publish(workdir: Path, out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "publish",
            "-w",
            str(workdir),
            "--repo-id",
            "me/demo",
            "--out",
            str(out),
            *SMALL,
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_upload_killed_halfway_resumes_complete_without_sending_a_file_twice(published, tmp_path):
    workdir, _, _ = published
    token = "hf_test_s3cret_token"
    with HubServer(tmp_path / "hub", token) as hub:
        env = os.environ | {
            "HF_TOKEN": token,
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(tmp_path / "hf"),
            "PYTHONPATH": str(REPO_ROOT),
        }
        out = tmp_path / "folder"
        hub.stall_after(3)
        first = _publish(workdir, out, env)
        deadline = time.monotonic() + 120
        while len(hub.state()["uploads"]) < 3 and first.poll() is None:
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.2)
        first.kill()
        first_output = first.communicate()[0]
        halfway = hub.state()
        assert first.returncode != 0, first_output  # killed, not finished
        assert halfway["commits"] == 0 and len(halfway["uploads"]) == 3

        hub.stall_after(None)
        second = _publish(workdir, out, env)
        second_output = second.communicate(timeout=300)[0]
        assert second.returncode == 0, second_output
        done = hub.state()
        parquet = sorted(out.rglob("*.parquet"))
        assert len(done["uploads"]) == len(parquet) > 3
        assert set(done["uploads"].values()) == {1}  # no file sent twice
        assert done["commits"] == 1
        files = done["repos"]["datasets/me/demo"]["main"]
        local = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
        assert set(files) == local - {".vaglio-publish.json"} | {".gitattributes"}
        for path in parquet:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            assert files[path.relative_to(out).as_posix()]["sha256"] == sha
        remote = tmp_path / "hub" / "datasets" / "me" / "demo" / "main"
        for lang, count in sql_counts(workdir).items():
            assert loaded_counts(remote, lang) == count
        assert token not in first_output + second_output
        assert "token from HF_TOKEN" in second_output


def test_a_refused_token_is_a_clear_error_that_never_shows_the_token(published, tmp_path):
    workdir, _, _ = published
    with HubServer(tmp_path / "hub", "the-right-token") as hub:
        env = {"HF_TOKEN": "hf_wrong_s3cret", "HF_HOME": str(tmp_path / "hf")}
        result = runner.invoke(
            app,
            [
                "publish",
                "-w",
                str(workdir),
                "--repo-id",
                "me/demo",
                "--out",
                str(tmp_path / "f"),
                "--endpoint",
                hub.endpoint,
            ],
            env=env,
        )
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"upload to {hub.endpoint} failed" in output and "401" in output
    assert "hf_wrong_s3cret" not in output and "Traceback" not in output


def test_publish_to_a_revision_commits_on_that_branch_only(published, tmp_path, monkeypatch):
    from huggingface_hub import constants

    workdir, _, _ = published
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stand-in speaks LFS only
    with HubServer(tmp_path / "hub", "tok") as hub:
        result = runner.invoke(
            app,
            [
                "publish",
                "-w",
                str(workdir),
                "--repo-id",
                "me/demo",
                "--out",
                str(tmp_path / "f"),
                "--revision",
                "v2",
                "--endpoint",
                hub.endpoint,
                "--private",
            ],
            env={"HF_TOKEN": "tok", "HF_HOME": str(tmp_path / "hf")},
        )
        assert result.exit_code == 0, result.output
        branches = hub.state()["repos"]["datasets/me/demo"]
    assert set(branches["main"]) == {".gitattributes"}
    assert "README.md" in branches["v2"] and any(p.endswith(".parquet") for p in branches["v2"])


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_a_folder_holding_the_users_own_files_is_refused_and_left_as_it_was(published, tmp_path):
    workdir, _, _ = published
    out = tmp_path / "mine"
    (out / "data" / "raw").mkdir(parents=True)
    (out / "README.md").write_text("# my notes\n")
    (out / "LICENSES.md").write_text("mine\n")
    pq.write_table(pa.table({"x": [1, 2]}), out / "data" / "raw" / "my.parquet")
    before = _tree(out)
    args = ["publish", "-w", str(workdir), "--repo-id", "me/demo", "--dry-run", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "not empty and not built by `vaglio publish`" in " ".join(result.output.split())
    assert _tree(out) == before


def test_publishing_again_leaves_exactly_the_new_dataset_on_the_hub_and_nothing_else(
    published, tmp_path, monkeypatch
):
    """A first publish, a `.env` and a note left in its folder, then a publish of fewer rows (a
    policy now refuses CC0) in fewer files: the repo holds the new files only, the folder's
    other files stay where they are, unpublished."""
    from huggingface_hub import constants

    workdir, _, _ = published
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stand-in speaks LFS only
    policy = tmp_path / "policy.yaml"
    refuse_cc0 = {"match": "CC0-1.0", "allowed": False, "reason": "no public-domain audio here"}
    policy.write_text(yaml.safe_dump({"extends": "default", "rules": [refuse_cc0]}))
    out = tmp_path / "folder"
    env = {"HF_TOKEN": "tok", "HF_HOME": str(tmp_path / "hf")}
    with HubServer(tmp_path / "hub", "tok") as hub:
        publish = ["publish", "-w", str(workdir), "--repo-id", "me/demo", "--out", str(out)]
        first = runner.invoke(app, [*publish, "--endpoint", hub.endpoint, *SMALL], env=env)
        assert first.exit_code == 0, first.output
        (out / ".env").write_text("SECRET=hunter2\n")
        (out / "data" / "notes.txt").write_text("mine\n")
        first_files = set(hub.state()["repos"]["datasets/me/demo"]["main"])
        second = runner.invoke(
            app, [*publish, "--endpoint", hub.endpoint, "--policy", str(policy)], env=env
        )
        assert second.exit_code == 0, second.output
        state = hub.state()
    remote = state["repos"]["datasets/me/demo"]["main"]
    dataset = {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")} | {
        "README.md",
        "LICENSES.md",
    }
    assert set(remote) == dataset | {".gitattributes"}
    assert first_files - set(remote)  # the first publish's extra files are gone
    assert state["commits"] == 2  # deleted in the publishing commit, not after it
    assert (out / ".env").read_text() == "SECRET=hunter2\n"  # the user's files: kept, not sent
    assert (out / "data" / "notes.txt").exists()
    stored = tmp_path / "hub" / "datasets" / "me" / "demo" / "main"
    published_rows = pa.concat_tables(pq.read_table(p) for p in stored.rglob("*.parquet"))
    licences = sql_counts(workdir, "license")
    assert len(published_rows) == sum(licences.values()) - licences["CC0-1.0"]
    assert "CC0-1.0" not in published_rows["license"].to_pylist()


def test_attribution_cannot_break_out_of_the_card(curated, tmp_path):
    """An attribution with a newline, a pipe, a heading, a link and HTML renders as its text in
    one table cell of the card the hub shows."""
    from markdown_it import MarkdownIt

    workdir = tmp_path / "work"
    shutil.copytree(curated[0], workdir)
    hostile = "Evil\n# Owned\r\n| x | y |\n<img src=x onerror=alert(1)> [click](javascript:x)"
    for path in workdir.glob("shard/*.parquet"):
        table = pq.read_table(path)
        column = pa.array([hostile] * len(table), pa.string())
        index = table.schema.get_field_index("attribution")
        table = table.set_column(index, "attribution", column)
        pq.write_table(table, path)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["publish", "-w", str(workdir), "--repo-id", "me/demo", "--dry-run", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    card = DatasetCard.load(out / "README.md")
    tokens = MarkdownIt("commonmark").enable("table").parse(card.text)
    assert [t.content for t in tokens if t.type == "inline" and "Owned" in t.content]
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert not [h for h in headings if "Owned" in h]
    assert not [t for t in tokens if t.type in ("html_block", "html_inline")]
    rendered = MarkdownIt("commonmark").enable("table").render(card.text)
    assert "<img" not in rendered and 'href="javascript' not in rendered
    one_line = html.escape(" ".join(hostile.split()), quote=False)
    cells = [line for line in rendered.splitlines() if "Owned" in line]
    assert cells and all(line == f"<td>{one_line}</td>" for line in cells)
