"""Licence statements as datasets write them, and the verdict an open-source lawyer would give."""

import pytest

from licenses import judge_license

ALLOWED = {
    "CC 0": "CC0-1.0",
    "cc0": "CC0-1.0",
    "CC0 1.0 Universal": "CC0-1.0",
    "Public Domain": "LicenseRef-PublicDomain",
    "CC BY 4.0": "CC-BY-4.0",
    "cc-by-4.0": "CC-BY-4.0",
    "Creative Commons Attribution 4.0 International": "CC-BY-4.0",
    "CC BY-SA 3.0": "CC-BY-SA-3.0",
    "https://creativecommons.org/licenses/by-sa/4.0/": "CC-BY-SA-4.0",
    "Apache 2.0": "Apache-2.0",
    "ODC-By": "ODC-By-1.0",
}
REFUSED = [
    "CC BY-NC 4.0",
    "cc-by-nc-sa-4.0",
    "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International",
    "https://creativecommons.org/licenses/by-nd/4.0/",
    "research only",
    "other",
    "CC BY",  # no version: we do not guess which one
    "",
]


@pytest.mark.parametrize(("text", "spdx_id"), ALLOWED.items())
def test_open_licences_are_normalised_and_allowed(text, spdx_id):
    verdict = judge_license(text)
    assert (verdict.spdx_id, verdict.allowed) == (spdx_id, True)


@pytest.mark.parametrize("text", REFUSED)
def test_non_open_or_unknown_licences_are_refused_with_a_reason(text):
    verdict = judge_license(text)
    assert not verdict.allowed
    assert verdict.reason


def test_obligations_travel_with_the_verdict():
    assert {"attribution", "share-alike"} <= set(judge_license("CC BY-SA 4.0").obligations)
    assert judge_license("CC0").obligations == ()
