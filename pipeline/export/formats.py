"""The formats `vaglio export` writes, apart from their writers so that the command line lists
them without importing any."""

from __future__ import annotations

import enum


class ExportFormat(str, enum.Enum):
    nemo = "nemo"
    nemo_tarred = "nemo-tarred"
    lhotse_shar = "lhotse-shar"
