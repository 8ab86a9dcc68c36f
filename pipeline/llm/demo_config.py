"""The curation config of `vaglio demo --llm`: PnC and translation through a local server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import yaml

from pipeline.llm.local_server import local_server
from pipeline.llm.offline_model import DEFAULT_OFFLINE_LLM

LLM_STAGES = ("punctuate", "translate")


@contextmanager
def local_llm_config(workdir: Path, model: str = DEFAULT_OFFLINE_LLM) -> Iterator[Path]:
    """Start the local server with the offline `model` and yield a config file (in `workdir`)
    whose LLM stages use it; the server stops when the block ends."""
    data = yaml.safe_load((resources.files("pipeline.llm") / "local_demo.yaml").read_text())
    with local_server(model) as server:
        connection = server.llm_config()
        for stage in LLM_STAGES:
            data[stage]["llm"] = {
                "backend": connection.backend,
                "model": connection.model,
                "base_url": connection.base_url,
                "concurrency": connection.concurrency,
                "guided_decoding": connection.guided_decoding,  # GBNF: PnC keeps every word
                **data[stage].get("llm", {}),
            }
        path = workdir / "llm-demo.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        yield path
