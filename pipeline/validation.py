"""How configs are checked: the ranges numbers take, the rules, and the one-line refusal.

The curation config (`pipeline.config`) and the training config (`training.config`) are frozen
dataclasses that pydantic reads from YAML. A setting's type says what it means (`Seconds`,
`Share`, `Count`), and a value outside it is refused before any stage runs: a threshold of NaN
or a chunk length of -5 s would otherwise find no speech, or drop every row, without a word.
Numbers are strict (a string or a bool is not a number here), and no config accepts NaN or
infinity (`CONFIG_RULES`).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated

from pydantic import ConfigDict, Field, ValidationError

CONFIG_RULES = ConfigDict(extra="forbid", allow_inf_nan=False)
"""What every config class is read with: unknown keys are errors, NaN and infinity too."""

_MAX_COUNT = 2**31 - 1  # what the C libraries and Arrow's int32 columns below us can hold

Count = Annotated[int, Field(strict=True, ge=1, le=_MAX_COUNT)]
"""A number of things that must be at least one (workers, a batch, a beam)."""

CountOrZero = Annotated[int, Field(strict=True, ge=0, le=_MAX_COUNT)]
"""A number of things that may be zero (retries, GPUs)."""

Seconds = Annotated[float, Field(strict=True, ge=0, le=86_400)]
"""A length of time, zero included, at most a day."""

PositiveSeconds = Annotated[float, Field(strict=True, gt=0, le=86_400)]
"""A length of time that must be above zero, at most a day."""

Share = Annotated[float, Field(strict=True, ge=0, le=1)]
"""A probability or a share of a whole, 0 and 1 included."""

OpenShare = Annotated[float, Field(strict=True, gt=0, lt=1)]
"""A share strictly between 0 and 1 (a threshold that at either end would decide nothing)."""

NonNegative = Annotated[float, Field(strict=True, ge=0)]
"""A finite number of at least zero: a rate, a weight, an error rate (which may pass 1)."""

Positive = Annotated[float, Field(strict=True, gt=0)]
"""A finite number above zero."""


def _known_keys(cls: type, loc: tuple) -> list[str]:
    """The keys the mapping at `loc` (a pydantic error location below `cls`) may hold."""
    for part in loc:
        hint = typing.get_type_hints(cls).get(part) if isinstance(part, str) else None
        nested = [t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t)]
        if nested:
            cls = nested[0]
    return sorted(f.name for f in dataclasses.fields(cls))


def first_error(error: ValidationError, root: type) -> str:
    """The first problem of a pydantic error in a config of class `root`, as one line:
    `key.path: what is wrong, got VALUE`."""
    problem = error.errors(include_url=False)[0]
    loc = problem["loc"]
    path = ".".join(str(part) for part in loc)
    if problem["type"] == "unexpected_keyword_argument":
        message = f"unknown key; known here: {', '.join(_known_keys(root, loc[:-1]))}"
    elif problem["type"] == "value_error":  # a config's own check, which names what it saw
        message = problem["msg"].removeprefix("Value error, ")
    else:
        message = f"{problem['msg']}, got {problem.get('input')!r:.60}"
    more = error.error_count() - 1
    return f"{path}: {message}".lstrip(": ") + (f" (and {more} more)" if more else "")
