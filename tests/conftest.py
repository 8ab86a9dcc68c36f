"""Shared fixtures: one synthetic corpus and one curated workdir for the whole session.

The corpus is spoken by espeak-ng at test time (nothing is downloaded); the curation runs the
real pipeline (Silero VAD, Whisper base) once and many tests read its results.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# datasets caches what it built from a local folder under a key that a new folder at a reused
# path (pytest's numbered temp folders) can match, and would then load an older build's rows:
# every test session gets a cache of its own, set before anything imports datasets.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="vaglio-test-datasets-")

import pytest

from pipeline.config import CurateConfig
from pipeline.demo_corpus import build_demo_corpus
from pipeline.run.curate import ThreadExecutor, curate

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def demo_catalog(tmp_path_factory) -> Path:
    return build_demo_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def curated(demo_catalog, tmp_path_factory):
    """(workdir, result) of one uninterrupted curation of the demo corpus."""
    workdir = tmp_path_factory.mktemp("curated")
    result = curate(demo_catalog, workdir, CurateConfig(), ThreadExecutor(2))
    return workdir, result
