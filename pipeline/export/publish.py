"""`vaglio publish` and `vaglio export` as library calls: what the CLI and the flows run."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.export.card import write_card
from pipeline.export.formats import ExportFormat
from pipeline.export.hub_folder import (
    ConfigSummary,
    Sizing,
    build_hub_folder,
    clear_earlier_build,
    write_file_list,
)
from pipeline.export.lhotse_shar import export_lhotse_shar
from pipeline.export.nemo import export_nemo
from pipeline.export.nemo_tarred import export_nemo_tarred
from pipeline.export.rows import ExportError, KeptRows, Refusal, Sample, samples
from pipeline.query.splits import DEFAULT_RATIOS


@dataclass(frozen=True)
class PublishFolder:
    path: Path
    files: list[str]  # what the dataset consists of, relative to `path`: all that is uploaded
    configs: list[ConfigSummary]
    refusals: list[Refusal]


def build_publish_folder(
    workdir: Path,
    out: Path,
    repo_id: str,
    *,
    policy: Path | None = None,
    ratios: Mapping[str, float] = DEFAULT_RATIOS,
    sizing: Sizing | None = None,
    progress: Callable[[int], None] = lambda rows: None,
) -> PublishFolder:
    """The folder the hub gets, built offline: data files, README.md card, LICENSES.md, and the
    list of them (see `hub_folder`); what an earlier build left there is replaced."""
    _check_repo_id(repo_id)
    kept = KeptRows(Path(workdir), policy, dict(ratios))
    out = Path(out)
    clear_earlier_build(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = build_hub_folder(kept, out, sizing or Sizing(), progress)
    data = [path for c in configs for paths in c.files.values() for path in paths]
    files = sorted([*data, *write_card(kept, configs, out, repo_id)])
    write_file_list(out, files)
    return PublishFolder(out, files, configs, kept.refusals)


def _check_repo_id(repo_id: str) -> None:
    """The hub's own rule, before anything is built: the id is also written into the card."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ExportError(f"--repo-id: {error}") from None


EXPORT_MARKER = ".vaglio-export"  # a folder holding it may be replaced by the next export


@dataclass(frozen=True)
class Exported:
    counts: dict[str, int]  # split -> lines (nemo) or segments
    refusals: list[Refusal]


def export(
    fmt: ExportFormat,
    workdir: Path,
    out: Path,
    *,
    splits: list[str] | None = None,
    policy: Path | None = None,
    ratios: Mapping[str, float] = DEFAULT_RATIOS,
    shard_size: int = 1000,
    progress: Callable[[Sample], None] = lambda s: None,
) -> Exported:
    """Write `fmt` under `out` (replaced if it exists) for the kept rows in `splits`."""
    kept = KeptRows(Path(workdir), policy, dict(ratios))
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / EXPORT_MARKER).exists():
            raise ExportError(f"{out}: exists and is not a vaglio export; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPORT_MARKER).write_text(f"{fmt.value}\n")
    rows = samples(kept, splits)
    if fmt is ExportFormat.nemo:
        counts = export_nemo(rows, out, progress)
    elif fmt is ExportFormat.nemo_tarred:
        counts = export_nemo_tarred(rows, out, shard_size, progress)
    else:
        counts = export_lhotse_shar(rows, out, shard_size, progress)
    return Exported(counts, kept.refusals)
