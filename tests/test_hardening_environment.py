"""The environment vaglio runs in: an unusable cache, a corrupt cached model, and schedules
a user mistyped. Each is one clear line or is repaired; none is a traceback."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.asr.offline_models import WHISPER_BASE_SHA256, resolve_whisper_model
from pipeline.cli import app

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["--help"], ["curate", "--help"], ["survey", "--help"]])
def test_help_works_whatever_the_cache_holds(tmp_path, command):
    """Nothing touches the cache until a command needs a model."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = os.environ | {"VAGLIO_CACHE": str(blocker / "cache"), "PYTHONPATH": str(REPO)}

    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *command], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert "Usage" in done.stdout


def test_a_corrupt_cached_whisper_model_is_assembled_anew(tmp_path, monkeypatch):
    import ctranslate2

    monkeypatch.setenv("VAGLIO_CACHE", str(tmp_path))
    model = Path(resolve_whisper_model("whisper-base")) / "model.bin"
    with model.open("r+b") as damaged:  # same size, a few bytes changed
        damaged.seek(model.stat().st_size // 2)
        damaged.write(b"\0" * 64)

    folder = resolve_whisper_model("whisper-base")

    assert hashlib.sha256(model.read_bytes()).hexdigest() == WHISPER_BASE_SHA256
    assert ctranslate2.models.Whisper(folder, device="cpu").is_multilingual


SCHEDULE = ["schedule", "add", "--catalog", "c.yaml", "--workdir", "w"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nightly", "--every", "0"], "--every 0: expected seconds from 1"),
        (["nightly", "--every", "-60"], "--every -60: expected seconds from 1"),
        (["nightly", "--every", "inf"], "--every inf: expected seconds from 1"),
        (["nightly", "--every", "nan"], "--every nan: expected seconds from 1"),
        (["nightly", "--cron", "0 2 * * *", "--timezone", "Mars/Olympus"], "not an IANA time"),
        (["nightly", "--every", "60", "--timezone", "../../etc/passwd"], "not an IANA time"),
        (["../../etc/x", "--every", "60"], "deployment name '../../etc/x'"),
        (["", "--every", "60"], "deployment name ''"),
        (["a" * 101, "--every", "60"], "1 to 100 letters"),
    ],
)
def test_a_mistyped_schedule_is_one_line_before_any_server(monkeypatch, arguments, message):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens there
    name, *options = arguments

    result = CliRunner().invoke(app, [*SCHEDULE[:2], name, *SCHEDULE[2:], *options])

    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
