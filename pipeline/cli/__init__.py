"""The `vaglio` command line: the same functions the flows call, with progress and summaries.

One module per group of commands; importing them registers their commands on `app`, in the
order `vaglio --help` lists them.
"""

from pipeline.cli import (  # noqa: F401  (registers the commands)
    curation,
    explore,
    llm_text,
    publish,
    query,
    schedule,
    sources,
    train,
)
from pipeline.cli.common import app

__all__ = ["app"]
