"""Licence policy: normalise what a source says about its licence, then judge it."""

from licenses.normalize import read_license
from licenses.policy import (
    DEFAULT_POLICY,
    LicenseVerdict,
    PolicyError,
    judge_license,
    load_policy,
    normalize_license,
)

__all__ = [
    "DEFAULT_POLICY",
    "LicenseVerdict",
    "PolicyError",
    "judge_license",
    "load_policy",
    "normalize_license",
    "read_license",
]
