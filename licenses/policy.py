"""Normalise free-text licence statements to SPDX ids and judge them against a policy file.

Normalisation is deliberately conservative: a string that does not clearly name a known
licence is reported as unknown (and refused), never guessed.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

DEFAULT_POLICY = Path(__file__).with_name("policy.yaml")

_CC_CLAUSES = {"by": "BY", "sa": "SA", "nc": "NC", "nd": "ND"}
_CC_WORDS = {
    "attribution": "by",
    "sharealike": "sa",
    "noncommercial": "nc",
    "noderivatives": "nd",
    "noderivs": "nd",
}
_FIXED = {
    "cc0": "CC0-1.0",
    "cczero": "CC0-1.0",
    "publicdomain": "LicenseRef-PublicDomain",
    "publicdomainmark": "LicenseRef-PublicDomain",
    "pdm": "LicenseRef-PublicDomain",
    "pd": "LicenseRef-PublicDomain",
    "pddl": "PDDL-1.0",
    "odcby": "ODC-By-1.0",
    "odbl": "ODbL-1.0",
    "apache": "Apache-2.0",
    "mit": "MIT",
    "researchonly": "LicenseRef-ResearchOnly",
    "forresearchonly": "LicenseRef-ResearchOnly",
    "proprietary": "LicenseRef-Proprietary",
}


@dataclass(frozen=True)
class LicenseVerdict:
    """What vaglio concluded about one licence statement."""

    text: str
    spdx_id: str | None
    allowed: bool
    reason: str
    obligations: tuple[str, ...] = field(default_factory=tuple)


def _creative_commons(words: list[str]) -> str | None:
    """`["cc", "by", "sa", "4.0"]` -> `CC-BY-SA-4.0`; None unless a version is stated."""
    clauses = [_CC_CLAUSES[w] for w in words if w in _CC_CLAUSES]
    versions = [w for w in words if re.fullmatch(r"\d\.\d", w)]
    if "BY" not in clauses or len(versions) != 1:
        return None
    ordered = [c for c in ("BY", "NC", "ND", "SA") if c in clauses]
    return "CC-" + "-".join(ordered) + "-" + versions[0]


def normalize_license(text: str) -> str | None:
    """Return the SPDX id (or `LicenseRef-…`) that `text` names, or None if unknown."""
    lowered = text.strip().lower()
    deed = re.search(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d\.\d)", lowered)
    if deed:
        kind, clauses, version = deed.groups()
        if kind == "publicdomain":
            return "CC0-1.0" if clauses == "zero" else "LicenseRef-PublicDomain"
        return _creative_commons(["cc", *clauses.split("-"), version])
    lowered = re.sub(r"\bcreative\s*commons\b", "cc", lowered)
    lowered = re.sub(r"\bcc[\s-]*(0|zero)\b", "cc0", lowered)
    lowered = re.sub(
        r"\b(licen[cs]e|international|universal|unported|generic|version|v)\b", " ", lowered
    )
    words = re.findall(r"\d\.\d|[a-z0-9]+", lowered.replace("-", " ").replace("_", " "))
    words = [_CC_WORDS.get(w, w) for w in words]
    words = [f"{w}.0" if re.fullmatch(r"\d", w) else w for w in words]
    joined = "".join(w for w in words if not re.fullmatch(r"\d\.\d", w))
    if joined in _FIXED:
        return _FIXED[joined]
    if words[:1] == ["cc"] or words[:1] == ["by"]:
        return _creative_commons(words)
    if joined == "apache" and "2.0" in words:
        return "Apache-2.0"
    return None


@cache
def _load_rules(policy_path: Path) -> list[dict]:
    data = yaml.safe_load(policy_path.read_text())
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list) or not all(isinstance(r, dict) and "match" in r for r in rules):
        raise ValueError(f"{policy_path}: expected a `rules:` list of entries with `match:`")
    return rules


def judge_license(text: str, policy_path: Path = DEFAULT_POLICY) -> LicenseVerdict:
    """Normalise `text` and apply the first matching policy rule; unknown means refused."""
    spdx_id = normalize_license(text)
    if spdx_id is None:
        return LicenseVerdict(text, None, False, f"unknown licence {text!r}: not recognised")
    for rule in _load_rules(Path(policy_path)):
        if fnmatch.fnmatchcase(spdx_id, rule["match"]):
            return LicenseVerdict(
                text,
                spdx_id,
                bool(rule.get("allowed", False)),
                str(rule.get("reason", "")),
                tuple(rule.get("obligations") or ()),
            )
    return LicenseVerdict(text, spdx_id, False, f"{spdx_id} is not in the licence policy")
