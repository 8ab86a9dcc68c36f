"""Resume semantics of the runner, with a tiny arithmetic stage standing in for real ones."""

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pytest

from pipeline.run.runner import StageRunner, write_shard
from pipeline.stage import PLAN, ShardContext, Stage


@dataclass(frozen=True)
class ScaleConfig:
    factor: int = 2


class Scale(Stage):
    name = "scale"
    version = "1"
    inputs = (PLAN,)
    calls: ClassVar[list[str]] = []

    def run(self, context: ShardContext) -> pa.Table:
        Scale.calls.append(context.shard_id)
        table = context.read(PLAN)
        if table["x"][0].as_py() < 0:
            raise RuntimeError("boom")
        return pa.table({"x": pa.compute.multiply(table["x"], self.config.factor)})


@pytest.fixture
def workdir(tmp_path):
    for shard, values in {"a": [1, 2], "b": [3], "c": [-1]}.items():
        write_shard(tmp_path, PLAN, shard, pa.table({"x": values}), fingerprint=shard)
    Scale.calls = []
    return tmp_path


def test_completed_shards_are_skipped_and_config_changes_rerun(workdir):
    runner = StageRunner(workdir)
    first = [runner.run(Scale(ScaleConfig()), s) for s in ("a", "b")]
    assert [o.skipped for o in first] == [False, False]
    assert [runner.run(Scale(ScaleConfig()), s).skipped for s in ("a", "b")] == [True, True]
    assert Scale.calls == ["a", "b"]
    runner.run(Scale(ScaleConfig(factor=3)), "a")
    assert ShardContext("a", workdir).read("scale")["x"].to_pylist() == [3, 6]


def test_changed_input_reruns_only_that_shard(workdir):
    runner = StageRunner(workdir)
    for shard in ("a", "b"):
        runner.run(Scale(ScaleConfig()), shard)
    write_shard(workdir, PLAN, "b", pa.table({"x": [10]}), fingerprint="b2")
    outcomes = {s: runner.run(Scale(ScaleConfig()), s).skipped for s in ("a", "b")}
    assert outcomes == {"a": True, "b": False}
    assert ShardContext("b", workdir).read("scale")["x"].to_pylist() == [20]


def test_a_failing_shard_leaves_no_output_and_keeps_earlier_work(workdir):
    runner = StageRunner(workdir)
    runner.run(Scale(ScaleConfig()), "a")
    with pytest.raises(RuntimeError, match="boom"):
        runner.run(Scale(ScaleConfig()), "c")
    assert not (workdir / "scale" / "c.parquet").exists()
    assert sorted(p.name for p in (workdir / "scale").iterdir()) == ["a.done.json", "a.parquet"]
