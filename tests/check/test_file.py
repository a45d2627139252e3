"""FILE_CHECK on real files: values, weights, reverse, missing files, junk."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pylvs.check.file import init_track_file, read_value, run
from pylvs.check.state import Result
from tests.check.helpers import conf


def check(path: Path, **kw: Any) -> Result:
    return asyncio.run(run(conf("FILE_CHECK", file_path=str(path), **kw)))


def test_weight_zero_is_up_down(tmp_path: Path) -> None:
    f = tmp_path / "state"
    f.write_text("0\n")
    assert check(f, weight=0).ok
    f.write_text("1\n")
    r = check(f, weight=0)
    assert not r.ok and "value 1" in r.reason
    assert check(f, weight=0, reverse=True).ok
    f.write_text("0")
    assert not check(f, weight=0, reverse=True).ok


def test_weighted_values_adjust_the_weight(tmp_path: Path) -> None:
    f = tmp_path / "w"
    f.write_text("7")
    r = check(f)  # keepalived's default track_file weight is 1
    assert r.ok and r.offset == 7
    r = check(f, weight=-3)
    assert r.ok and r.offset == -21
    r = check(f, weight=2, reverse=True)
    assert r.ok and r.offset == -14
    f.write_text("0x10 trailing junk")
    assert check(f).offset == 16


def test_missing_file_reads_zero(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert read_value(str(missing)) == 0
    assert check(missing, weight=0).ok
    r = check(missing)
    assert r.ok and r.offset == 0


def test_out_of_range_keeps_the_previous_value(tmp_path: Path) -> None:
    f = tmp_path / "big"
    f.write_text("5")
    assert check(f).offset == 5
    f.write_text(str(2**40))
    assert read_value(str(f)) is None
    assert check(f).offset == 5


def test_no_file_option() -> None:
    assert not asyncio.run(run(conf("FILE_CHECK"))).ok


def test_init_file(tmp_path: Path) -> None:
    f = tmp_path / "t"
    assert init_track_file(str(f), ("5",)) is None
    assert f.read_text() == "5\n"
    assert init_track_file(str(f), ("7",)) is None  # exists: kept
    assert f.read_text() == "5\n"
    assert init_track_file(str(f), ("7", "overwrite"), reload=True) is None  # not on reload
    assert f.read_text() == "5\n"
    assert init_track_file(str(f), ("overwrite", "-2")) is None
    assert f.read_text() == "-2\n"
    g = tmp_path / "g"
    assert init_track_file(str(g)) is None and g.read_text() == "0\n"
    assert init_track_file(str(tmp_path), ("overwrite",)) is not None  # a directory
    assert init_track_file(str(g), ("x1",)) is not None
