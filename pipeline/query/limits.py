"""What one read-only query may take, apart from `pipeline.query.sql` so that the command line
shows the defaults without importing DuckDB."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SQL_SPILL_DIR = ".sql-spill"
"""Where a query that outgrows its memory limit spills; DuckDB removes it when done."""


@dataclass(frozen=True)
class QueryLimits:
    """What one query may take (sizes as DuckDB reads them: 500MB, 4GB)."""

    memory: str = "2GB"
    spill: str = "20GB"  # on disk, once memory is full
    spill_dir: Path | None = None  # None: <workdir>/.sql-spill

    def settings(self, workdir: Path) -> dict[str, str]:
        return {
            "memory_limit": self.memory,
            "max_temp_directory_size": self.spill,
            "temp_directory": str(self.spill_dir or Path(workdir) / SQL_SPILL_DIR),
        }
