"""Licence policy: normalise what a source says about its licence, then judge it."""

from licenses.policy import LicenseVerdict, judge_license, normalize_license

__all__ = ["LicenseVerdict", "judge_license", "normalize_license"]
