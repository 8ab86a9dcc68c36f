"""The lock files in requirements/ still match pyproject.toml.

`make setup` installs from the locks with `--no-deps`, so a dependency added to or tightened in
pyproject.toml without a `make lock` would silently not be installed. These tests say so, and
which dependency, without the network.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
# Each lock and the extras it installs (besides the project's own dependencies), as the
# Makefile's stamps install them.
LOCK_SETS = {
    "base.txt": ["dev"],
    "nemo.txt": ["dev", "nemo", "train"],
    "ray.txt": ["dev", "ray"],
    "llm.txt": ["dev", "llm-cpu"],
    "export.txt": ["dev", "export"],
    "all.txt": ["dev", "nemo", "train", "ray", "llm-cpu", "export"],
}
# What the locks were made for (`make lock`): CPython 3.11 on x86-64 Linux.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")


def pins(lock: Path) -> dict[str, str]:
    """Name → version of every `name==version` line; each must carry a hash on its next line."""
    lines = lock.read_text().splitlines()
    found = {}
    for number, line in enumerate(lines):
        match = PIN.match(line)
        if match:
            following = lines[number + 1] if number + 1 < len(lines) else ""
            assert "--hash=sha256:" in line + following, f"{lock.name}: {line} has no hash"
            found[canonicalize_name(match[1])] = match[2]
    return found


def declared(extras: list[str]) -> list[Requirement]:
    """The project's dependencies and those of the given extras, for the locks' target."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    wanted = [Requirement(line) for line in lines]
    return [req for req in wanted if req.marker is None or req.marker.evaluate(TARGET)]


@pytest.mark.parametrize("lock_name", sorted(LOCK_SETS))
def test_every_declared_dependency_is_locked_at_a_version_pyproject_allows(lock_name):
    locked = pins(LOCKS / lock_name)
    for req in declared(LOCK_SETS[lock_name]):
        name = canonicalize_name(req.name)
        assert name in locked, f"{lock_name} lacks {req}: run `make lock`"
        version = locked[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{lock_name} pins {name}=={version}, pyproject.toml asks {req}: run `make lock`"
        )


def test_the_sets_agree_with_each_other_and_torch_is_the_cpu_build():
    everything = pins(LOCKS / "all.txt")
    for lock_name in LOCK_SETS:
        locked = pins(LOCKS / lock_name)
        differing = {
            name: (version, everything.get(name))
            for name, version in locked.items()
            if everything.get(name) != version
        }
        assert not differing, f"{lock_name} differs from all.txt: {differing}"
        assert locked["torch"].endswith("+cpu"), f"{lock_name} pins torch {locked['torch']}"
        assert not [name for name in locked if name.startswith(("nvidia-", "triton"))]
