"""Catalogs, configs and policies are read strictly: what a user wrote twice, an alias bomb,
a misspelt section or an impossible number is one clear line, never a silent choice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

SOURCE = """\
sources:
  - name: radio
    kind: metadata
    license: CC BY-NC 4.0
    attribution: Example Radio
    languages: [en]
    hours: 10
"""


def survey(tmp_path: Path, catalog: str):
    (tmp_path / "catalog.yaml").write_text(catalog)
    workdir = tmp_path / "work"
    result = CliRunner().invoke(app, ["survey", str(tmp_path / "catalog.yaml"), "-w", str(workdir)])
    return result, workdir


def error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_a_licence_written_twice_is_an_error_naming_the_key_and_both_lines(tmp_path):
    result, workdir = survey(tmp_path, SOURCE.replace("    attribution", "    license: CC0\n"
                                                      "    attribution"))  # fmt: skip

    assert result.exit_code == 2
    line = error_line(result)
    assert "duplicate key 'license'" in line and "line 5" in line and "line 4" in line
    assert not workdir.exists()


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        (SOURCE.replace("sources:", "sourcse:"), "unknown top-level key(s) sourcse"),
        (SOURCE + "sources: []\n", "duplicate key 'sources'"),
        (SOURCE.replace("hours: 10", "hours: .nan"), "hours.en: expected a finite number"),
        (SOURCE.replace("hours: 10", "hours: .inf"), "hours.en: expected a finite number"),
        (SOURCE.replace("hours: 10", "hours: {en: -.inf}"), "hours.en: expected a finite number"),
        (SOURCE + "    files_per_shard: 100000000000000000000\n", "files_per_shard: expected"),
        (
            SOURCE + "  - &a [x]\n  - *a\n  - &b [*b]\n",
            "alias *b refers to a value that contains it",
        ),
        ("sources: " + "[" * 200_000 + "\n", "nested more than"),
        (SOURCE.replace("Example", "Ex\x00ample"), "the file must be UTF-8 text"),
    ],
)
def test_a_catalog_vaglio_cannot_trust_is_one_line_and_no_survey(tmp_path, catalog, message):
    result, workdir = survey(tmp_path, catalog)

    assert result.exit_code == 2
    assert message in error_line(result)
    assert not workdir.exists()


# Nine levels of nine aliases: 387 million strings once expanded (by a repr in an error, say).
ALIAS_BOMB = (
    "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
    )
    + "sources: [{name: x, kind: metadata, license: CC0, attribution: *i, languages: [en]}]\n"
)


@pytest.mark.parametrize("where", ["catalog", "config", "policy", "training"])
def test_an_alias_bomb_is_refused_before_it_grows(tmp_path, where):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    read = {
        "catalog": f"from pipeline.sources.catalog import load_catalog as f; f({str(bomb)!r})",
        "config": f"from pipeline.config import load_config as f; f({str(bomb)!r})",
        "policy": f"from licenses import load_policy as f; f({str(bomb)!r})",
        "training": f"from training.config import load_config as f; f({str(bomb)!r})",
    }[where]
    limit = 2 << 30  # 2 GiB of address space: plenty for vaglio's imports, not for the bomb
    program = (
        f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
        f"try:\n    {read}\nexcept ValueError as error:\n    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120)  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    assert "expands to more than 1,000,000 values through its aliases" in done.stdout
    assert str(bomb) in done.stdout
