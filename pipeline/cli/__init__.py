"""The `vaglio` command line: the same functions the flows call, with progress and summaries.

One module per group of commands; importing them registers their commands on `app`, in the
order `vaglio --help` lists them. A command module imports at its top only what declaring its
commands needs (typer, `pipeline.cli.common`, the enums and defaults its options show, from
light modules such as `pipeline.query.limits`), and what a command runs inside its body: so
`vaglio --help` starts in a fraction of a second and each command waits only for its own
modules (tests/test_cli_imports.py keeps it so).
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
