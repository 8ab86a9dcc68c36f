"""Querying a workdir: read-only SQL and error rates against references."""
