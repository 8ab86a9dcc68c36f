"""`python -m pipeline.cli`: the same as the `vaglio` command."""

from pipeline.cli import app

app()
