"""Licence statements as datasets write them, and the verdict an open-source lawyer would give."""

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from licenses import PolicyError, judge_license, load_policy, normalize_license
from licenses.normalize import ALIASES
from pipeline.cli import app

# Statements from hub cards, papers, websites and catalogs, with the licence they grant.
ALLOWED = {
    "CC 0": "CC0-1.0",  # Common Voice, as MOSEL lists it
    "cc0": "CC0-1.0",
    "CC-0": "CC0-1.0",
    "CC0 1.0 Universal": "CC0-1.0",
    "CC0-1.0": "CC0-1.0",
    "CC BY 4.0 (see LICENSE)": "CC-BY-4.0",  # a pointer to the text adds no terms
    "cc0-1.0": "CC0-1.0",
    "Creative Commons Zero v1.0 Universal": "CC0-1.0",
    "CC0: Public Domain": "CC0-1.0",
    "Public Domain (CC0)": "CC0-1.0",
    "http://creativecommons.org/publicdomain/zero/1.0/": "CC0-1.0",
    "VoxPopuli: CC0": "CC0-1.0",
    "Public Domain": "LicenseRef-PublicDomain",
    "public domain (LibriVox)": "LicenseRef-PublicDomain",
    "LibriVox recordings are in the public domain": "LicenseRef-PublicDomain",
    "Public Domain Mark 1.0": "LicenseRef-PublicDomain",
    "US Government Work": "LicenseRef-PublicDomain",
    "CC BY 4.0": "CC-BY-4.0",
    "cc-by-4.0": "CC-BY-4.0",
    "CC-BY 4.0": "CC-BY-4.0",
    "CC-BY-4.0": "CC-BY-4.0",
    "CC BY v4.0": "CC-BY-4.0",
    "cc by 4": "CC-BY-4.0",
    "Creative Commons Attribution 4.0 International": "CC-BY-4.0",
    "Creative Commons Attribution 4.0 International (CC BY 4.0)": "CC-BY-4.0",
    "Creative Commons Attribution 4.0 International Public License": "CC-BY-4.0",
    "Attribution 4.0 International": "CC-BY-4.0",
    "This dataset is released under the CC BY 4.0 licence.": "CC-BY-4.0",
    "FLEURS: CC BY 4.0": "CC-BY-4.0",
    "Licensed under CC BY 4.0. See LICENSE for details.": "CC-BY-4.0",
    "CC-BY-4.0 https://creativecommons.org/licenses/by/4.0/": "CC-BY-4.0",
    "Creative Commons Attribution 4.0 International License (CC BY 4.0)": "CC-BY-4.0",
    "audio: CC BY 4.0, transcripts: CC BY 4.0": "CC-BY-4.0",
    "https://creativecommons.org/licenses/by/4.0/": "CC-BY-4.0",
    "https://creativecommons.org/licenses/by/4.0/legalcode": "CC-BY-4.0",
    "https://creativecommons.org/licenses/by/4.0/deed.en": "CC-BY-4.0",
    "CC BY 3.0": "CC-BY-3.0",
    "Creative Commons Attribution 3.0 Unported": "CC-BY-3.0",
    "CC BY 3.0 US": "CC-BY-3.0-US",
    "cc-by-2.0": "CC-BY-2.0",
    "cc-by-2.5": "CC-BY-2.5",
    "CC BY-SA 3.0": "CC-BY-SA-3.0",
    "CC-BY-SA-3.0-IGO": "CC-BY-SA-3.0-IGO",
    "https://creativecommons.org/licenses/by-sa/3.0/igo/": "CC-BY-SA-3.0-IGO",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "BY-SA 4.0": "CC-BY-SA-4.0",
    "Creative Commons Attribution-ShareAlike 4.0": "CC-BY-SA-4.0",
    "Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0)": "CC-BY-SA-4.0",
    "https://creativecommons.org/licenses/by-sa/4.0/": "CC-BY-SA-4.0",
    "Apache 2.0": "Apache-2.0",
    "Apache License, Version 2.0": "Apache-2.0",
    "Licensed under the Apache License, Version 2.0": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "https://www.apache.org/licenses/LICENSE-2.0": "Apache-2.0",
    "MIT": "MIT",
    "The MIT License (MIT)": "MIT",
    "https://opensource.org/licenses/MIT": "MIT",
    "BSD 3-Clause": "BSD-3-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "New BSD License": "BSD-3-Clause",
    "Simplified BSD License": "BSD-2-Clause",
    "GPL-3.0": "GPL-3.0-only",
    "gpl-3.0": "GPL-3.0-only",
    "GNU General Public License v3.0": "GPL-3.0-only",
    "GPLv2 or later": "GPL-2.0-or-later",
    "GPL-2.0+": "GPL-2.0-or-later",
    "LGPL": "LGPL-2.0-or-later",  # the LGPL: no version stated, any version may be used
    "GNU Lesser General Public License v2.1 or later": "LGPL-2.1-or-later",
    "agpl-3.0": "AGPL-3.0-only",
    "ODC-By": "ODC-By-1.0",
    "odc-by": "ODC-By-1.0",
    "ODC-BY 1.0": "ODC-By-1.0",
    "Open Data Commons Attribution License": "ODC-By-1.0",
    "https://opendatacommons.org/licenses/by/1-0/": "ODC-By-1.0",
    "ODbL": "ODbL-1.0",
    "Open Database License (ODbL) v1.0": "ODbL-1.0",
    "PDDL": "PDDL-1.0",
    "pddl": "PDDL-1.0",
    "CDLA-Permissive-1.0": "CDLA-Permissive-1.0",
    "cdla-permissive-2.0": "CDLA-Permissive-2.0",
    "Community Data License Agreement – Permissive – Version 2.0": "CDLA-Permissive-2.0",
    "CDLA-Sharing-1.0": "CDLA-Sharing-1.0",
    "isc": "ISC",
    "Academic Free License 3.0": "AFL-3.0",
    "unlicense": "Unlicense",
    "mpl-2.0": "MPL-2.0",
    "European Union Public Licence 1.2": "EUPL-1.2",
    "etalab-2.0": "etalab-2.0",
}

# Statements that must be refused, with what vaglio reads in them (None: unknown).
REFUSED = {
    "CC BY-NC 4.0": "CC-BY-NC-4.0",
    "CC-BY-NC-4.0": "CC-BY-NC-4.0",
    "cc-by-nc-4.0": "CC-BY-NC-4.0",
    "Europarl-ST: CC BY-NC 4.0": "CC-BY-NC-4.0",
    "Attribution-NonCommercial 4.0 International": "CC-BY-NC-4.0",
    "https://creativecommons.org/licenses/by-nc/4.0/": "CC-BY-NC-4.0",
    "cc-by-nc-sa-4.0": "CC-BY-NC-SA-4.0",
    "Creative Commons BY-NC-SA 4.0": "CC-BY-NC-SA-4.0",
    "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International": "CC-BY-NC-SA-4.0",
    "CC BY-NC-ND 4.0": "CC-BY-NC-ND-4.0",
    "cc-by-nc-nd-3.0": "CC-BY-NC-ND-3.0",
    "CC BY-NC-ND 3.0 IGO": "CC-BY-NC-ND-3.0-IGO",
    "cc-by-nd-4.0": "CC-BY-ND-4.0",
    "https://creativecommons.org/licenses/by-nd/4.0/": "CC-BY-ND-4.0",
    "CC BY-NC": "LicenseRef-NonCommercial",  # no version, but non-commercial in every one
    "Creative Commons Attribution-NonCommercial": "LicenseRef-NonCommercial",
    "not for commercial use": "LicenseRef-NonCommercial",
    "non-commercial": "LicenseRef-NonCommercial",
    "Non-commercial use only": "LicenseRef-NonCommercial",
    "NC": "LicenseRef-NonCommercial",
    "commercial use requires a separate licence": "LicenseRef-NonCommercial",
    "fair-noncommercial-research-license": "LicenseRef-NonCommercial",
    "Commercial use prohibited": "LicenseRef-NonCommercial",
    "no derivatives": "LicenseRef-NoDerivatives",
    "Internal use only": "LicenseRef-ResearchOnly",
    "Not for redistribution": "LicenseRef-Proprietary",
    "Requires registration": "LicenseRef-Proprietary",
    "research only": "LicenseRef-ResearchOnly",
    "research purposes only": "LicenseRef-ResearchOnly",
    "for research purposes only": "LicenseRef-ResearchOnly",
    "academic use only": "LicenseRef-ResearchOnly",
    "Free for academic research only": "LicenseRef-ResearchOnly",
    "for research and educational purposes": "LicenseRef-ResearchOnly",
    "h-research": "LicenseRef-ResearchOnly",
    "LDC User Agreement": "LicenseRef-Proprietary",
    "LDC User Agreement for Non-Members": "LicenseRef-Proprietary",
    "LDC2004S13": "LicenseRef-Proprietary",
    "ELRA END USER licence": "LicenseRef-Proprietary",
    "proprietary": "LicenseRef-Proprietary",
    "all rights reserved": "LicenseRef-Proprietary",
    "c-uda": "LicenseRef-Proprietary",
    "llama2": "LicenseRef-Proprietary",
    "OpenRAIL": "LicenseRef-OpenRAIL",
    "openrail": "LicenseRef-OpenRAIL",
    "bigscience-openrail-m": "LicenseRef-OpenRAIL",
    "creativeml-openrail-m": "LicenseRef-OpenRAIL",
    "other": "LicenseRef-Other",
    "custom license": "LicenseRef-Other",
    "unknown": "LicenseRef-Unknown",
    "see website": "LicenseRef-Unknown",
    "CC BY 4.0, see the terms": "CC-BY-4.0 AND LicenseRef-Unknown",  # terms may restrict
    "See LICENSE file": "LicenseRef-Unknown",
    "N/A": "LicenseRef-Unknown",
    "gfdl": "GFDL-1.1-or-later",  # invariant sections may forbid changes
    "CC BY": None,  # no version: we do not guess which one
    "CC-BY": None,
    "CC BY-SA": None,
    "Creative Commons Attribution licence": None,
    "Creative Commons": None,
    "cc": None,
    "bsd": None,
    "Apache": None,
    "free to use": None,
    "open source": None,
    "Copyright (c) 2020 ACME": None,
    "": None,
    # several licences that apply together: every one must be allowed
    "CC BY 4.0 and CC BY-NC 4.0": "CC-BY-4.0 AND CC-BY-NC-4.0",
    "train: CC BY 4.0; test: CC BY-NC 4.0": "CC-BY-4.0 AND CC-BY-NC-4.0",
    "audio CC BY 4.0, transcripts CC BY-NC 4.0": "CC-BY-4.0 AND CC-BY-NC-4.0",
    "CC BY 4.0 / CC BY-NC 4.0": "CC-BY-4.0 AND CC-BY-NC-4.0",  # unclear: read as both
    "CC BY 4.0, research use only": "CC-BY-4.0 AND LicenseRef-ResearchOnly",
    "CC BY 4.0 for non-commercial use": "CC-BY-4.0 AND LicenseRef-NonCommercial",
    "CC BY 4.0 except for commercial use": "CC-BY-4.0 AND LicenseRef-NonCommercial",
    "CC BY 4.0 with additional terms": "CC-BY-4.0 AND LicenseRef-Other",
    "CC BY and MIT": None,
    # alternatives none of which is open
    "CC BY-NC 4.0 or research only": "CC-BY-NC-4.0 OR LicenseRef-ResearchOnly",
}


@pytest.mark.parametrize(("text", "spdx_id"), ALLOWED.items())
def test_open_licences_are_normalised_and_allowed(text, spdx_id):
    verdict = judge_license(text)
    assert (verdict.spdx_id, verdict.allowed) == (spdx_id, True), verdict.reason
    assert normalize_license(text) == spdx_id


@pytest.mark.parametrize(("text", "read_as"), REFUSED.items())
def test_non_open_or_unknown_licences_are_refused_with_a_reason(text, read_as):
    verdict = judge_license(text)
    assert not verdict.allowed
    assert verdict.spdx_id == read_as
    assert verdict.obligations == ()
    assert len(verdict.reason) > 20


@pytest.mark.parametrize(
    ("text", "unread"),
    [
        ("CC BY 4.0, redistribution prohibited", "'redistribution prohibited'"),
        ("CC BY 4.0 — you may not sell this data", "'not sell'"),
        ("CC BY 4.0; no AI training", "'no AI training'"),
        ("CC BY 4.0 for test use", "'test'"),
        ("cc-by-4.0-no-resale", "'no-resale'"),
        ("Prohibited: CC BY 4.0", "'Prohibited'"),
        ("CC BY 4.0 or MIT, members only", "'members only'"),
        ("CC BY 4.0 https://example.com/more-terms", "'https://example.com/more-terms'"),
        ("CC BY 4.0 — 禁止转载", "'禁止转载'"),
        ("CC BY 4.0 " + "lorem ipsum " * 5000, f"'{'lorem ipsum ' * 5}lorem ipsum' and 9988 more"),
    ],
)
def test_words_beside_a_licence_that_no_rule_reads_make_it_unknown(text, unread):
    verdict = judge_license(text)
    assert (verdict.spdx_id, verdict.allowed) == (None, False)
    assert f"words vaglio cannot read beside the licence: {unread}" in verdict.reason
    assert len(verdict.reason) < 400
    assert normalize_license(text) is None


def test_unread_words_beside_a_refused_licence_keep_it_refused_and_named():
    verdict = judge_license("CC BY-NC 4.0, no resale")
    assert (verdict.spdx_id, verdict.allowed) == ("CC-BY-NC-4.0", False)
    assert "non-commercial clause" in verdict.reason and "'no resale'" in verdict.reason


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("CC BY-NC 4.0", "non-commercial clause"),
        ("CC BY-ND 4.0", "no-derivatives clause"),
        ("research purposes only", "research-only"),
        ("LDC User Agreement", "agreement"),
        ("OpenRAIL", "use restrictions"),
        ("CC BY", "version"),
        ("BSD", "clauses"),
        ("something made up", "'something made up'"),
        ("CC BY 4.0 and CC BY-NC 4.0", "CC-BY-NC-4.0: non-commercial clause"),
    ],
)
def test_reasons_say_why(text, words):
    assert words in judge_license(text).reason


def test_a_choice_between_licences_is_used_under_the_open_one():
    verdict = judge_license("CC BY 4.0 or CC BY-NC 4.0")
    assert (verdict.spdx_id, verdict.allowed) == ("CC-BY-4.0", True)
    assert verdict.expression == "CC-BY-4.0 OR CC-BY-NC-4.0"
    assert "attribution" in verdict.obligations
    dual = judge_license("dual licensed under CC BY-NC 4.0 and CC BY-SA 4.0")
    assert (dual.spdx_id, dual.allowed) == ("CC-BY-SA-4.0", True)
    wiki = judge_license("CC BY-SA 3.0 or GFDL")
    assert (wiki.spdx_id, wiki.allowed) == ("CC-BY-SA-3.0", True)
    assert judge_license("CC BY 4.0 or, at your option, CC BY-SA 4.0").spdx_id == "CC-BY-4.0"


def test_among_open_alternatives_the_one_with_fewest_obligations_is_picked():
    assert judge_license("Apache-2.0 OR MIT").spdx_id == "MIT"
    assert judge_license("CC BY 4.0 or CC0").spdx_id == "CC0-1.0"


@pytest.mark.parametrize(
    ("text", "used", "allowed"),
    [
        ("(MIT AND CC-BY-NC-4.0) OR CC0-1.0", "CC0-1.0", True),  # CC0 may be picked
        ("(CC BY 4.0 AND MIT) OR CC0", "CC0-1.0", True),  # names read by the prose layer
        ("CC-BY-NC-4.0 OR (MIT AND Apache-2.0)", "MIT AND Apache-2.0", True),
        ("Apache-2.0 AND (MIT OR CC-BY-NC-4.0)", "Apache-2.0 AND MIT", True),
        ("MIT AND (CC-BY-NC-4.0 OR CC-BY-ND-4.0)", "MIT AND (CC-BY-NC-4.0 OR CC-BY-ND-4.0)", False),
        ("CC-PDDC", "CC-PDDC", True),  # a real SPDX id: public domain, not "a family"
        ("CC-BY-4.0 OR CC-PDDC", "CC-PDDC", True),
        (
            "GPL-2.0-or-later WITH Classpath-exception-2.0",
            "GPL-2.0-or-later WITH Classpath-exception-2.0",
            True,
        ),
    ],
)
def test_an_spdx_expression_keeps_its_structure(text, used, allowed):
    verdict = judge_license(text)
    assert (verdict.spdx_id, verdict.allowed) == (used, allowed), verdict.reason


@pytest.mark.parametrize(
    "text",
    ["CC-BY-4.0 AND (", "MIT OR OR Apache-2.0", "((((MIT", "MIT AND", "OR MIT",
     "(MIT OR CC0-1.0))", "CC BY 4.0 AND (", "MIT WITH", "MIT OR OR …"],
)  # fmt: skip
def test_a_malformed_spdx_expression_is_refused_not_repaired(text):
    verdict = judge_license(text)
    assert not verdict.allowed and verdict.spdx_id is None
    assert "not a valid SPDX licence expression" in verdict.reason


def test_open_licences_that_apply_together_carry_all_their_obligations():
    verdict = judge_license("audio: CC0; transcripts: CC BY-SA 4.0")
    assert verdict.allowed
    assert verdict.spdx_id == "CC0-1.0 AND CC-BY-SA-4.0"
    assert verdict.obligations == judge_license("CC BY-SA 4.0").obligations


def test_obligations_travel_with_the_verdict():
    assert judge_license("CC BY 4.0").obligations == (
        "attribution",
        "licence-notice",
        "state-changes",
    )
    assert "share-alike" in judge_license("CC BY-SA 4.0").obligations
    assert "share-alike" not in judge_license("CC BY 4.0").obligations
    assert "share-alike" in judge_license("ODbL").obligations
    assert judge_license("CC0").obligations == ()
    assert judge_license("PDDL").obligations == ()


def _alias_ids() -> list[str]:
    data = yaml.safe_load(ALIASES.read_text())
    return [e["id"] for e in data["aliases"] if e["id"]] + data["cc_ported"]


@pytest.mark.parametrize("spdx_id", _alias_ids())
def test_every_known_id_reads_as_itself_and_has_a_rule(spdx_id):
    verdict = judge_license(spdx_id)
    assert verdict.spdx_id == spdx_id
    assert "not in the licence policy" not in verdict.reason


def test_the_default_policy_refuses_every_restricted_category():
    for rule in load_policy():
        if re.search(r"-NC|-ND|LicenseRef-(?!PublicDomain)", rule.match):
            assert not rule.allowed, rule.match
        assert {"non-commercial", "no-derivatives", "research-only"}.isdisjoint(rule.obligations)


def write_policy(tmp_path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


INTERNAL = """
extends: default
rules:
  - match: "CC-BY-NC-*"
    allowed: true
    reason: "internal project: non-commercial use is fine"
    obligations: [attribution, non-commercial]
"""


def test_a_user_policy_can_allow_non_commercial_licences_for_an_internal_project(tmp_path):
    policy = write_policy(tmp_path, INTERNAL)
    verdict = judge_license("CC BY-NC-SA 4.0", policy)
    assert verdict.allowed and verdict.reason.startswith("internal project")
    assert verdict.obligations == ("attribution", "non-commercial")
    assert judge_license("CC BY 4.0", policy).allowed  # from the default rules
    assert not judge_license("CC BY-ND 4.0", policy).allowed
    assert not judge_license("CC BY-NC 4.0").allowed  # the default policy is unchanged


def test_a_user_policy_without_extends_replaces_the_default(tmp_path):
    policy = write_policy(tmp_path, 'rules:\n  - {match: "cc-by-*", allowed: true}\n')
    assert judge_license("CC BY-NC 4.0", policy).allowed  # globs ignore case
    verdict = judge_license("CC0", policy)
    assert not verdict.allowed and "not in the licence policy" in verdict.reason


def test_an_edited_policy_file_is_read_again(tmp_path):
    policy = write_policy(tmp_path, 'rules:\n  - {match: "MIT", allowed: true}\n')
    assert judge_license("MIT", policy).allowed
    policy.write_text('rules:\n  - {match: "MIT", allowed: false, reason: "no thanks"}\n')
    assert judge_license("MIT", policy).reason == "no thanks"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [\n", "not a YAML file"),
        ("- a list\n", "expected a mapping with a `rules:` list"),
        ("policy: {}\n", "expected a mapping with a `rules:` list"),
        ("rules: {match: MIT}\n", "`rules:` must be a list"),
        ("rules: []\nextends: mine\n", "`extends` can only be `default`"),
        ("rules: []\ncolour: blue\n", "unknown key colour"),
        ("rules:\n  - {match: MIT, allowed: true}\n  - {allowed: true}\n", "rule 2: `match`"),
        ("rules:\n  - {match: MIT}\n", "rule 1 (match 'MIT'): missing `allowed"),
        ("rules:\n  - {match: MIT, allowed: 'yes'}\n", "`allowed` must be true or false"),
        ("rules:\n  - {match: MIT, allowed: true, note: x}\n", "rule 1 (match 'MIT'): unknown key"),
        ("rules:\n  - {match: MIT, allowed: true, obligations: credit}\n", "must be a list"),
        ("rules:\n  - {match: MIT, allowed: true, obligations: [credit]}\n", "obligation credit"),
        ("rules:\n  - {match: MIT, allowed: true, reason: [a]}\n", "`reason` must be text"),
        ("rules:\n  - just text\n", "rule 1: expected a mapping"),
    ],
)
def test_a_bad_policy_file_is_a_clear_error(tmp_path, text, message):
    policy = write_policy(tmp_path, text)
    with pytest.raises(PolicyError) as raised:
        judge_license("MIT", policy)
    assert str(policy) in str(raised.value)
    assert message in str(raised.value)


def test_a_missing_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError, match=r"policy\.yaml: policy file cannot be read"):
        load_policy(tmp_path / "policy.yaml")
    with pytest.raises(PolicyError, match="not a file"):
        load_policy(tmp_path)


def vaglio(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, ["license", *args], input=stdin)


def test_license_command_prints_the_verdict_and_exits_by_it():
    allowed = vaglio("CC BY 4.0")
    assert allowed.exit_code == 0, allowed.output
    assert "CC-BY-4.0" in allowed.output and "allowed" in allowed.output
    refused = vaglio("CC BY-NC 4.0")
    assert refused.exit_code == 1
    assert "CC-BY-NC-4.0" in refused.output and "refused" in refused.output
    unknown = vaglio("whatever")
    assert unknown.exit_code == 1 and "unknown" in unknown.output


def test_license_command_json_for_several_statements():
    result = vaglio("CC0", "CC BY-NC 4.0", "CC BY", "--format", "json")
    assert result.exit_code == 1  # one refused is enough
    rows = json.loads(result.stdout)
    assert [(r["text"], r["spdx_id"], r["allowed"]) for r in rows] == [
        ("CC0", "CC0-1.0", True),
        ("CC BY-NC 4.0", "CC-BY-NC-4.0", False),
        ("CC BY", None, False),
    ]
    assert "non-commercial" in rows[1]["reason"] and rows[0]["obligations"] == []


def test_license_command_reads_statements_from_stdin():
    result = vaglio("-", "-f", "json", stdin="cc-by-4.0\n\nApache License, Version 2.0\n")
    assert result.exit_code == 0, result.output
    assert [r["spdx_id"] for r in json.loads(result.stdout)] == ["CC-BY-4.0", "Apache-2.0"]
    assert vaglio("-", stdin="").exit_code == 2


def test_license_command_csv():
    result = vaglio("MIT OR Apache-2.0", "--format", "csv")
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header == "text,spdx_id,expression,allowed,reason,obligations"
    assert row.startswith("MIT OR Apache-2.0,MIT,MIT OR Apache-2.0,True,")


def test_license_command_with_a_user_policy(tmp_path):
    policy = write_policy(tmp_path, INTERNAL)
    assert vaglio("CC BY-NC 4.0", "--policy", str(policy)).exit_code == 0
    bad = write_policy(tmp_path, "rules:\n  - {match: MIT, allowed: maybe}\n")
    result = vaglio("CC BY-NC 4.0", "--policy", str(bad))
    assert result.exit_code == 2
    assert "policy.yaml: rule 1 (match 'MIT')" in " ".join(result.output.split())
    assert vaglio("MIT", "--policy", str(tmp_path / "missing.yaml")).exit_code == 2


def test_license_command_help_has_examples():
    result = CliRunner().invoke(app, ["license", "--help"])
    assert result.exit_code == 0
    assert "vaglio license" in result.output and "--policy" in result.output


def test_an_output_that_cannot_be_written_is_one_clear_line(tmp_path):
    """MOSEL's catalog and its survey, written where they cannot go."""
    missing = tmp_path / "no" / "such" / "mosel.yaml"
    result = CliRunner().invoke(app, ["mosel-catalog", "-o", str(missing)])
    assert result.exit_code == 2
    assert f"the folder {missing.parent} does not exist" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    catalog = tmp_path / "mosel.yaml"
    assert CliRunner().invoke(app, ["mosel-catalog", "-o", str(catalog)]).exit_code == 0
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "survey").write_text("a file where the survey folder goes")
    result = CliRunner().invoke(app, ["survey", str(catalog), "-w", str(tmp_path / "work")])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr and "survey" in result.stderr
