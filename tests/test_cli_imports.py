"""`vaglio` starts without the pipeline: `vaglio --help`, and any command until it runs, import
only what declares the commands (see `pipeline/cli/__init__.py`). A command module that imports
a stage, DuckDB or a model at its top would make every command wait for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "pipeline.config",
    "pipeline.run.curate",
    "pipeline.stages.filter",
    "manifests.views",
    "duckdb",
    "pyarrow",
    "numpy",
    "pandas",
    "torch",
    "ctranslate2",
    "onnxruntime",
    "av",
    "fastapi",
    "prefect",
    "training",
)


def imported_by(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_cli_imports_no_pipeline_model_or_database():
    modules = imported_by("import pipeline.cli")
    assert "pipeline.cli.curation" in modules  # every command is declared
    assert sorted(modules.intersection(HEAVY)) == []


def test_help_of_every_command_imports_none_of_them():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom pipeline.cli import app\n"
        "for command in ([], ['curate'], ['sql'], ['explore'], ['export'], ['train'],"
        " ['schedule', 'add']):\n"
        "    result = CliRunner().invoke(app, [*command, '--help'])\n"
        "    assert result.exit_code == 0, result.output\n"
    )
    assert sorted(imported_by(code).intersection(HEAVY)) == []
