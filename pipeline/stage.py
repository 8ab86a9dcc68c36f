"""The stage contract: a name, a version, a typed config; one input shard in, one shard out.

A stage decides only *what* happens to a shard. Where and when it runs (a thread, a Prefect
task, a Ray worker) is the runner's and the flow's business.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq


class StageConfigError(ValueError):
    """Settings that each look valid but cannot work together in a stage."""


PLAN = "plan"
"""The pseudo-stage whose shards list each shard's input files (written by the planner)."""


@dataclass(frozen=True)
class ShardContext:
    """What a stage may read while it processes one shard."""

    shard_id: str
    workdir: Path

    def output_path(self, stage: str) -> Path:
        return self.workdir / stage / f"{self.shard_id}.parquet"

    def read(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        """The table that `stage` wrote for this shard."""
        return pq.read_table(self.output_path(stage), columns=columns)


class Stage(ABC):
    """Base class of every pipeline stage."""

    name: ClassVar[str]
    version: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]]
    """Stages whose output for the same shard this stage reads (its fingerprint depends on them)."""
    max_parallel_shards: ClassVar[int] = 2
    """How many shards may run at once; model stages that use every core say 1."""

    def __init__(self, config: Any):
        self.config = config

    @property
    def version_tag(self) -> str:
        """What the `versions` column records for this stage: its version, plus its model."""
        return self.version

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def fingerprint_extra(self, context: ShardContext) -> str:
        """Anything beyond config and inputs that changes the output (e.g. cross-shard facts)."""
        return ""

    def files_beside(self, context: ShardContext, output: pa.Table) -> list[Path]:
        """Files this stage wrote for the shard besides its output table (the dataset files of
        `shard`), so that the completion marker proves them too."""
        return []

    @abstractmethod
    def run(self, context: ShardContext) -> pa.Table:
        """Process one shard and return its output table."""
