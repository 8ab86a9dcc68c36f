"""Judge licence statements against a policy file: is the data open enough to train on?

The policy is data (policy.yaml, or a user's file with the same shape); this module reads
it strictly, so that a typo in a user's policy is an error rather than a silent refusal (or,
worse, a silent acceptance), and applies it to what normalize.py reads from a statement.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from licenses.expression import Combined, Licence, MalformedExpression, Node, parse_expression, spdx
from licenses.normalize import Reading, normalize_license, read_license
from pipeline.strict_yaml import StrictYamlError, read_yaml

DEFAULT_POLICY = Path(__file__).with_name("policy.yaml")

# The obligations a rule may list, in the order verdicts report them.
OBLIGATIONS = {
    "attribution": "credit the creators as the licence asks",
    "licence-notice": "keep the licence text, or a link to it, with every copy",
    "state-changes": "say that the material was changed (cut, filtered, transcribed)",
    "share-alike": "share adaptations under the same or a compatible licence",
    "share-source": "offer the preferred form for modification with every copy",
    "non-commercial": "no commercial use",
    "no-derivatives": "no adaptations",
    "research-only": "research use only",
}
_RULE_KEYS = ("match", "allowed", "reason", "obligations")
_POLICY_KEYS = ("rules", "extends")

__all__ = [
    "DEFAULT_POLICY",
    "OBLIGATIONS",
    "LicenseVerdict",
    "PolicyError",
    "Rule",
    "judge_license",
    "load_policy",
    "normalize_license",
]


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the rule."""


@dataclass(frozen=True)
class Rule:
    """One policy entry: SPDX ids matching `match` are allowed or refused, for `reason`."""

    match: str
    allowed: bool
    reason: str
    obligations: tuple[str, ...] = ()


@dataclass(frozen=True)
class LicenseVerdict:
    """What vaglio concluded about one licence statement.

    `spdx_id` is the licence the data is used under: for "A OR B" the alternative picked,
    otherwise the whole expression; None when the statement is not understood.
    `expression` is everything the statement names, as an SPDX licence expression.
    """

    text: str
    spdx_id: str | None
    allowed: bool
    reason: str
    obligations: tuple[str, ...] = field(default_factory=tuple)
    expression: str | None = None


def _rule(path: Path, index: int, entry: object) -> Rule:
    where = f"{path}: rule {index}"
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: expected a mapping with {', '.join(_RULE_KEYS)}")
    match = entry.get("match")
    if isinstance(match, str):
        where += f" (match {match!r})"
    unknown = sorted(str(k) for k in entry if k not in _RULE_KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown key {', '.join(unknown)}; a rule has "
                          f"{', '.join(_RULE_KEYS)}")  # fmt: skip
    if not isinstance(match, str) or not match.strip():
        raise PolicyError(f'{where}: `match` must be a glob over SPDX ids, e.g. "CC-BY-*"')
    allowed = entry.get("allowed")
    if "allowed" not in entry:
        raise PolicyError(f"{where}: missing `allowed: true` or `allowed: false`")
    if not isinstance(allowed, bool):
        raise PolicyError(f"{where}: `allowed` must be true or false, not {allowed!r}")
    reason = entry.get("reason", f"{'allowed' if allowed else 'refused'} by {path.name}")
    if not isinstance(reason, str):
        raise PolicyError(f"{where}: `reason` must be text")
    obligations = entry.get("obligations") or []
    if not isinstance(obligations, list) or not all(isinstance(o, str) for o in obligations):
        raise PolicyError(f"{where}: `obligations` must be a list, e.g. [attribution]")
    strange = [o for o in obligations if o not in OBLIGATIONS]
    if strange:
        raise PolicyError(f"{where}: unknown obligation {', '.join(strange)}; known: "
                          f"{', '.join(OBLIGATIONS)}")  # fmt: skip
    return Rule(match.strip(), allowed, reason, tuple(obligations))


@cache
def _read_policy(path: Path, _mtime_ns: int) -> tuple[Rule, ...]:
    try:
        data = read_yaml(path)
    except StrictYamlError as error:
        raise PolicyError(f"{path}: not a YAML file: {error}") from None
    if not isinstance(data, dict) or "rules" not in data:
        raise PolicyError(f"{path}: expected a mapping with a `rules:` list")
    unknown = sorted(str(k) for k in data if k not in _POLICY_KEYS)
    if unknown:
        raise PolicyError(f"{path}: unknown key {', '.join(unknown)}; a policy has "
                          f"`rules:` and optionally `extends: default`")  # fmt: skip
    if data.get("extends", "default") != "default":
        raise PolicyError(f"{path}: `extends` can only be `default` (vaglio's policy)")
    if not isinstance(data["rules"], list):
        raise PolicyError(f"{path}: `rules:` must be a list of rules")
    rules = tuple(_rule(path, i, entry) for i, entry in enumerate(data["rules"], start=1))
    return rules + (load_policy(DEFAULT_POLICY) if "extends" in data else ())


def load_policy(path: Path | str = DEFAULT_POLICY) -> tuple[Rule, ...]:
    """The rules of a policy file, checked; rules are numbered from 1 in errors."""
    path = Path(path)
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError as error:
        raise PolicyError(f"{path}: policy file cannot be read: {error.strerror}") from None
    if not path.is_file():
        raise PolicyError(f"{path}: policy file is not a file")
    return _read_policy(path.resolve(), mtime_ns)


def _judge_id(spdx_id: str, rules: tuple[Rule, ...]) -> Rule:
    for rule in rules:
        if fnmatch.fnmatchcase(spdx_id.lower(), rule.match.lower()):
            return rule
    return Rule(spdx_id, False, f"{spdx_id} is not in the licence policy")


# A statement longer than this is cut short where a reason quotes it.
_QUOTED_CHARACTERS = 80


def _problems(reading: Reading) -> list[str]:
    """Why the statement cannot be read whole: unresolved names, then unread words."""
    unread = [f"words vaglio cannot read beside the licence: {reading.unread}; they may "
              "restrict it"] if reading.unread else []  # fmt: skip
    return [*reading.unresolved, *unread]


def _unknown(text: str, reading: Reading) -> str:
    shown = _shown(text)
    if reading.unresolved or reading.unread:
        return f"unknown licence {shown!r}: {'; '.join(_problems(reading))}"
    if not text.strip():
        return "no licence stated: without one, all rights are reserved"
    return (
        f"unknown licence {shown!r}: not a licence vaglio recognises; state an SPDX id "
        "(e.g. CC-BY-4.0) or the URL of the licence deed"
    )


@dataclass(frozen=True)
class _Judged:
    spdx_id: str  # the licence used: the alternative picked, or the whole expression
    allowed: bool
    reason: str
    obligations: tuple[str, ...] = ()


def _together(refused: list[str]) -> str:
    return f"{'; '.join(refused)} (the statement's licences apply together, each must be allowed)"


def _judge(node: Node, rules: tuple[Rule, ...]) -> _Judged:
    """A licence by its rule; "A OR B" allowed when an alternative is (the one with the fewest
    obligations is picked); "A AND B" allowed when every part is, with all their obligations."""
    if isinstance(node, Licence):
        rule = _judge_id(node.spdx_id, rules)
        return _Judged(node.spdx_id, rule.allowed, rule.reason, rule.obligations)
    judged = [_judge(part, rules) for part in node.parts]
    expression = spdx(node)
    parts = "; ".join(f"{j.spdx_id}: {j.reason}" for j in judged)
    if node.operator == "OR":
        allowed = [j for j in judged if j.allowed]
        if not allowed:
            return _Judged(expression, False, f"no alternative allowed: {parts}")
        pick = min(allowed, key=lambda j: len(j.obligations))
        reason = f"{pick.reason} ({pick.spdx_id}, picked from the alternatives {expression})"
        return _Judged(pick.spdx_id, True, reason, pick.obligations)
    refused = [f"{j.spdx_id}: {j.reason}" for j in judged if not j.allowed]
    if refused:
        return _Judged(expression, False, _together(refused))
    obligations = tuple(o for o in OBLIGATIONS if any(o in j.obligations for j in judged))
    used = " AND ".join(j.spdx_id for j in judged)  # each alternative inside resolved
    reason = f"every licence that applies together is allowed: {parts}"
    return _Judged(used, True, reason, obligations)


def _shown(text: str) -> str:
    return text if len(text) <= _QUOTED_CHARACTERS else text[: _QUOTED_CHARACTERS - 1] + "…"


def _verdict(text: str, judged: _Judged, expression: str) -> LicenseVerdict:
    return LicenseVerdict(text, judged.spdx_id, judged.allowed, judged.reason,
                          judged.obligations, expression)  # fmt: skip


def judge_license(text: str, policy_path: Path | str | None = DEFAULT_POLICY) -> LicenseVerdict:
    """Read `text`, judge every licence it names by the first matching rule, and combine.

    A statement written as an SPDX expression keeps its structure (expression.py); prose is
    read by normalize.py, its licences alternatives ("A or B") or applying together.
    "A OR B" (the user may pick) is allowed when some alternative is, under the one with
    the fewest obligations; licences that apply together are allowed only if all are, with
    all their obligations. Malformed expressions, unknown or ambiguous statements, and
    statements with words beside the licence that vaglio cannot read, are refused.
    """
    rules = load_policy(policy_path or DEFAULT_POLICY)
    try:
        tree = parse_expression(text)
    except MalformedExpression as error:
        return LicenseVerdict(text, None, False, f"unknown licence {_shown(text)!r}: {error}")
    if tree is not None:
        return _verdict(text, _judge(tree, rules), spdx(tree))
    reading = read_license(text)
    expression = reading.expression
    judged = [(spdx_id, _judge_id(spdx_id, rules)) for spdx_id in reading.ids]
    doubtful = bool(reading.unresolved or reading.unread)
    if (
        not judged
        or (doubtful and all(r.allowed for _, r in judged))
        or (reading.unread and reading.operator == "OR")  # the words may bind every choice
    ):
        return LicenseVerdict(text, None, False, _unknown(text, reading), (), expression)
    if doubtful:  # some licence is refused; the unread words are named beside it
        refused = [f"{i}: {r.reason}" for i, r in judged if not r.allowed]
        reason = _together(refused + [f"unknown: {note}" for note in _problems(reading)])
        return LicenseVerdict(text, expression, False, reason, (), expression)
    ids = tuple(Licence(spdx_id) for spdx_id in reading.ids)
    tree = ids[0] if len(ids) == 1 else Combined(reading.operator, ids)
    return _verdict(text, _judge(tree, rules), expression)
