"""FILE_CHECK (keepalived check_file.c, track_file.c): the real server's health and weight
from a number in a file.

The file holds an integer, read as C's ``strtol(text, NULL, 0)`` reads it (leading
blanks, sign, ``0x`` hex, leading-0 octal, trailing junk ignored, no digits = 0); a
missing or empty file reads 0; a number outside the 32-bit range is ignored (the
previous value stays).  With the track file's ``weight`` W (default 1) and
``reverse`` (multiplier -1):

- W = 0: the server is down when the value is non-zero (with reverse: when it is 0);
- W != 0: the server stays up and ``value x W x multiplier`` is added to its
  configured weight (the sum clamped to [0, 65535] by ServerHealth); only a product at
  or below -2^31 puts it down (keepalived's IPVS_WEIGHT_FAULT).

Options (the parser resolves ``track_file NAME`` to the track_file block): ``file_path``
(or ``file``), ``weight``, ``reverse``; ``init_file [VALUE] [overwrite]`` is applied once
at startup by :func:`init_track_file` (the daemon's job, not each check's).

Deliberate difference: keepalived follows the file with inotify; pylvs reads it every
second (or delay_loop when shorter): cheap, and no inotify binding.
"""

from __future__ import annotations

import os
import re

from pylvs.check.state import Result
from pylvs.config.model import CheckerConf

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
READ_MAX = 127  # keepalived reads up to 127 bytes

_NUMBER = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)?")
_last: dict[str, int] = {}


def strtol(text: str) -> int:
    """C strtol(text, NULL, 0), without the range check."""
    m = _NUMBER.match(text)
    if m is None or m.group(2) is None:
        return 0
    digits = m.group(2)
    if digits[:2] in ("0x", "0X"):
        value = int(digits[2:], 16)
    elif len(digits) > 1 and digits[0] == "0":
        value = int(digits[1:], 8)
    else:
        value = int(digits)
    return -value if m.group(1) == "-" else value


def read_value(path: str) -> int | None:
    """The file's number (0 when missing or empty), None when out of range."""
    try:
        with open(path, "rb") as f:
            raw = f.read(READ_MAX)
    except OSError:
        return 0
    value = strtol(raw.decode("latin-1"))
    if value < INT_MIN or value > INT_MAX + 1:
        return None
    return value


def init_track_file(
    path: str, words: tuple[str, ...] | list[str] = (), reload: bool = False
) -> str | None:
    """keepalived's ``init_file [VALUE] [overwrite]``: write VALUE (default 0) to the file
    when it does not exist, or with ``overwrite`` also when it does (not on a reload).
    Returns an error message, or None."""
    value = 0
    overwrite = False
    for w in words:
        if w == "overwrite":
            overwrite = True
        else:
            try:
                value = int(w)
            except ValueError:
                return f"track file {path}: init value {w!r} is invalid"
    if os.path.lexists(path):
        if not overwrite:
            return None
        if not os.path.isfile(path):
            return f"cannot initialise track file {path}: not a regular file"
        if reload:
            return None
    try:
        with open(path, "w") as f:
            f.write(f"{value}\n")
    except OSError as e:
        return f"unable to initialise track file {path}: {e.strerror or e}"
    return None


def judge(value: int, weight: int = 1, reverse: bool = False) -> Result:
    if weight == 0:
        fault = (value != 0) != reverse
        if fault:
            return Result(False, f"value {value}")
        return Result(True, f"value {value}")
    status = max(INT_MIN, min(INT_MAX, value * weight * (-1 if reverse else 1)))
    if status <= INT_MIN:
        return Result(False, f"value {value} x weight {weight}: fault")
    return Result(True, f"value {value}: weight {status:+d}", offset=status)


def _int_opt(v: object, default: int) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, str)):
        return int(v)
    return default


async def run(conf: CheckerConf) -> Result:
    path = conf.options.get("file_path") or conf.options.get("file")
    if not path:
        return Result(False, f"FILE_CHECK {conf.where}: no file")
    path = str(path)
    value = read_value(path)
    if value is None:
        previous = _last.get(path, 0)
        value = previous
    else:
        _last[path] = value
    res = judge(value, _int_opt(conf.options.get("weight"), 1), bool(conf.options.get("reverse")))
    return Result(res.ok, f"FILE_CHECK {path}: {res.reason}", offset=res.offset)
