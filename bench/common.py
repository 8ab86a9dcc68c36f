"""What every benchmark shares: where corpora are cached, and how a figure is printed."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shlex
import sys
from pathlib import Path

from manifests.views import connect
from pipeline.demo_corpus import REFERENCES_NAME

CACHE = Path(os.environ.get("VAGLIO_BENCH_CACHE", Path(__file__).resolve().parent / ".cache"))
CORES = os.cpu_count() or 1
# Settings that change what CTranslate2 (and oneDNN under it) computes: part of the command.
_NUMERICS_ENV = ("CT2_USE_MKL", "CT2_FORCE_CPU_ISA", "ONEDNN_MAX_CPU_ISA")


def ct2_backend() -> str:
    """The GEMM library CTranslate2 uses here: MKL by default on Intel CPUs, oneDNN elsewhere
    (CT2_USE_MKL forces it), with oneDNN's instruction-set cap when one is set."""
    mkl = os.environ.get("CT2_USE_MKL") == "1"
    if "CT2_USE_MKL" not in os.environ:
        with contextlib.suppress(OSError):
            mkl = "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    name = "mkl" if mkl else "onednn"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{name}-{cap.lower()}" if cap and not mkl else name


def command_line() -> str:
    """How to run the benchmark again, as it was run now."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(Path.cwd())
    settings = [f"{key}={os.environ[key]}" for key in _NUMERICS_ENV if key in os.environ]
    return shlex.join([*settings, "python", str(script), *sys.argv[1:]])


def _rounded(value):
    """Floats to 3 decimals, inside mappings too (per-language and per-source figures)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def emit(benchmark: str, **figures) -> None:
    """One JSON line: the benchmark, its figures, the machine's cores, CTranslate2's backend
    and the command."""
    line = {
        "benchmark": benchmark,
        **_rounded(figures),
        "cores": CORES,
        "ct2": ct2_backend(),
        "command": command_line(),
    }
    print(json.dumps(line), flush=True)


def demo_references(catalog: Path, workdir: Path) -> dict[str, tuple[str, str]]:
    """recording_id -> (language, what was said), for every recording of a curated demo corpus.

    Files of the local sources have their script in `references.tsv`; a labelled source (the
    NeMo manifest, whose windows of one file are recordings of their own) brings its
    transcripts, which the workdir keeps as `text_source`.
    """
    with open(Path(catalog).parent / REFERENCES_NAME, encoding="utf-8") as f:
        references = {
            f"{r['source']}/{r['file']}": (r["lang"], r["text"])
            for r in csv.DictReader(f, delimiter="\t")
        }
    with connect(Path(workdir)) as con:
        labelled = con.execute(
            "SELECT recording_id, declared_languages[1], text_source FROM recordings "
            "WHERE text_source IS NOT NULL"
        ).fetchall()
    return references | {rid: (lang, text) for rid, lang, text in labelled}
