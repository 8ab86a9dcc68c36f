"""Manifests written by hand or by hostile tools: one bad line is quarantined with its reason,
a corrupt stream fails its own source only, and every file is judged under its own licence."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from pipeline.audio.decode import SAMPLE_RATE
from pipeline.cli import app
from pipeline.demo_corpus import write_audio
from pipeline.query.sql import run_query
from pipeline.sources import read_source
from pipeline.sources.catalog import load_catalog

LHOTSE_RECORDING = {
    "id": "rec",
    "duration": 1.0,
    "sampling_rate": 16000,
    "num_samples": 16000,
    "sources": [{"type": "file", "channels": [0], "source": "a.wav"}],
}
"""One second of a.wav as a Lhotse recording."""


def tone(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)


def catalog_of(folder: Path, *sources: dict) -> Path:
    defaults = {"attribution": "test", "languages": ["en"], "license": "CC0-1.0"}
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump({"sources": [defaults | s for s in sources]}, sort_keys=False))
    return path


def survey(catalog: Path, workdir: Path) -> list[dict]:
    result = CliRunner().invoke(app, ["survey", str(catalog), "-w", str(workdir)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    columns = "source, license_text, allowed, files, unreadable_files, error"
    return run_query(workdir, f"SELECT {columns} FROM sources ORDER BY ALL").to_pylist()


def reasons(catalog: Path) -> dict[str, dict[str, str | None]]:
    return {
        source.name: {item.key: item.problem for item in read_source(source)}
        for source in load_catalog(catalog)
    }


def nemo_manifest(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_per_split_licence_matches_however_the_manifest_writes_the_path(tmp_path):
    root = tmp_path / "parliament"
    for name in ("train/t1.wav", "test/t2.wav", "test/t3.wav"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_audio(root / name, tone())
    rows = [
        {"audio_filepath": p, "duration": 1.0, "text": "x"}
        for p in ("train/t1.wav", "./test/t2.wav", str(root / "test" / "t3.wav"))
    ]
    nemo_manifest(root / "manifest.json", [json.dumps(r) for r in rows])
    licence = {"test/*": "CC BY-NC 4.0", "*": "CC BY 4.0"}  # the README's own example
    catalog = catalog_of(
        tmp_path,
        {
            "name": "parliament",
            "kind": "nemo",
            "path": "parliament/manifest.json",
            "license": licence,
        },
    )

    rows = survey(catalog, tmp_path / "work")

    by_licence = {r["license_text"]: (r["allowed"], r["files"]) for r in rows}
    assert by_licence == {"CC BY 4.0": (True, 1), "CC BY-NC 4.0": (False, 2)}


def test_a_row_licence_that_is_not_text_is_quarantined_never_replaced(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        write_audio(root / name, tone())
    nemo_manifest(
        root / "manifest.json",
        [
            json.dumps(
                {"audio_filepath": "a.wav", "duration": 1.0, "license": {"id": "CC-BY-NC-4.0"}}
            ),
            json.dumps({"audio_filepath": "b.wav", "duration": 1.0, "license": ["CC BY-NC 4.0"]}),
            json.dumps({"audio_filepath": "c.wav", "duration": 1.0, "license": "CC BY 4.0"}),
        ],
    )
    recording = LHOTSE_RECORDING | {"custom": {"license": ["CC BY-NC 4.0"]}}
    (root / "recordings.jsonl").write_text(json.dumps(recording) + "\n")
    catalog = catalog_of(
        tmp_path,
        {"name": "nemo", "kind": "nemo", "path": "src/manifest.json"},
        {"name": "lhotse", "kind": "lhotse", "path": "src/recordings.jsonl"},
    )

    found = reasons(catalog)

    assert found["nemo"] == {
        "a.wav": "bad manifest row: license is not text: {'id': 'CC-BY-NC-4.0'}",
        "b.wav": "bad manifest row: license is not text: ['CC BY-NC 4.0']",
        "c.wav": None,
    }
    assert found["lhotse"] == {"rec": "bad manifest row: license is not text: ['CC BY-NC 4.0']"}


def test_hostile_manifest_lines_are_quarantined_and_every_source_surveyed(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    write_audio(root / "good.wav", tone())
    nemo_manifest(
        root / "manifest.json",
        [
            json.dumps({"audio_filepath": "good.wav", "duration": 1.0}),
            json.dumps({"audio_filepath": "bad\0name.wav", "duration": 1.0}),
            '{"audio_filepath": "\\ud800.wav", "duration": 1.0}',  # a lone surrogate
            "[" * 200_000,
            '{"audio_filepath": "good.wav", "offset": 0, "duration": 1' + "0" * 400 + "}",
            '{"audio_filepath": "good.wav", "offset": 0.5, "duration": ' + "9" * 5000 + "}",
            '{"audio_filepath": "good.wav", "lang": ' + "7" * 300 + "}",
        ],
    )
    (tmp_path / "other").mkdir()
    write_audio(tmp_path / "other" / "x.wav", tone())
    catalog = catalog_of(
        tmp_path,
        {"name": "hostile", "kind": "nemo", "path": "src/manifest.json"},
        {"name": "other", "kind": "local", "path": "other"},
    )

    problems = list(reasons(catalog)["hostile"].values())
    rows = survey(catalog, tmp_path / "work")

    assert problems[0] is None
    assert "NUL character in path" in problems[1]
    assert "not UTF-8" in problems[2]
    assert "line 4 cannot be read" in problems[3]
    assert "duration out of range" in problems[4]
    assert "line 6 cannot be read" in problems[5] and len(problems[5]) < 200
    assert "unknown language" in problems[6] and len(problems[6]) < 200
    assert [(r["source"], r["files"], r["unreadable_files"], r["error"]) for r in rows] == [
        ("hostile", 7, 6, None),
        ("other", 1, 0, None),
    ]


def test_a_corrupt_gzip_manifest_fails_its_source_alone(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    write_audio(root / "a.wav", tone())
    recording = LHOTSE_RECORDING
    lines = "".join(
        json.dumps(recording | {"id": f"r{i}", "text": "x" * (i % 97)}) + "\n" for i in range(3000)
    )
    packed = bytearray(gzip.compress(lines.encode()))
    packed[len(packed) // 2 : len(packed) // 2 + 32] = b"\xff" * 32
    (root / "recordings.jsonl.gz").write_bytes(bytes(packed))
    (tmp_path / "other").mkdir()
    write_audio(tmp_path / "other" / "x.wav", tone())
    catalog = catalog_of(
        tmp_path,
        {"name": "corrupt", "kind": "lhotse", "path": "src/recordings.jsonl.gz"},
        {"name": "other", "kind": "local", "path": "other"},
    )

    rows = survey(catalog, tmp_path / "work")

    assert "cannot read the manifest" in rows[0]["error"]
    assert (rows[1]["source"], rows[1]["files"], rows[1]["error"]) == ("other", 1, None)


def test_a_common_voice_sentence_with_a_tab_or_line_break_is_never_cut(tmp_path):
    folder = tmp_path / "cv-it"
    (folder / "clips").mkdir(parents=True)
    for name in ("a.mp3", "b.mp3", "c.mp3"):
        write_audio(folder / "clips" / name, tone())
    (folder / "validated.tsv").write_text(
        "client_id\tpath\tsentence\tlocale\n"
        "c1\ta.mp3\tCiao a tutti.\tit\n"
        "c2\tb.mp3\tPrima metà\tseconda metà\tit\n"
        "c3\tc.mp3\tUna riga\n"
        "spezzata in due.\tit\n",
        encoding="utf-8",
    )
    catalog = catalog_of(
        tmp_path, {"name": "cv", "kind": "commonvoice", "path": "cv-it", "languages": ["it"]}
    )

    (source,) = load_catalog(catalog)
    items = {item.key: item for item in read_source(source)}

    assert items["clips/a.mp3"].text == "Ciao a tutti."
    problems = {key: item.problem for key, item in items.items() if item.problem}
    assert problems == {
        "validated.tsv line 3": "bad manifest row: validated.tsv line 3 has 1 field(s) more "
        "than the header (a tab inside a field?)",
        "validated.tsv line 4": "bad manifest row: validated.tsv line 4 has fewer fields than "
        "the header (a line break inside a field?)",
        "validated.tsv line 5": "bad manifest row: validated.tsv line 5 has fewer fields than "
        "the header (a line break inside a field?)",
    }


def test_a_source_without_audio_files_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("the audio is elsewhere")

    (row,) = survey(
        catalog_of(tmp_path, {"name": "empty", "kind": "local", "path": "empty"}), tmp_path / "work"
    )

    assert row["error"].endswith("no audio files found")
