"""SMTP_CHECK (keepalived check_smtp.c): connect, expect a ``220`` greeting, send
``HELO <helo_name>``, expect ``250``, send ``QUIT`` and read one more line (whatever it
says).  Each step within connect_timeout.  ``helo_name`` defaults to keepalived's
``smtpchecker.keepalived.org``.

Deliberate difference: multi-line replies (``220-...`` continuation lines) are read up
to their last line; keepalived only looks at the first line, where ``220-`` fails.
The deprecated ``host`` sub-blocks are the parser's business (one checker each).
"""

from __future__ import annotations

import asyncio

from pylvs.check.base import connect_tcp, describe_error, hostport
from pylvs.check.state import Result
from pylvs.config.model import CheckerConf

DEFAULT_HELO = "smtpchecker.keepalived.org"
MAX_LINE = 4096


class SmtpError(Exception):
    pass


def reply_code(line: bytes) -> tuple[int | None, bool]:
    """(code, final) of one reply line: ``b"250 ok"`` -> (250, True), ``b"250-x"`` ->
    (250, False); (None, True) when the line does not start with three digits."""
    text = line.rstrip(b"\r\n")
    if len(text) < 3 or not text[:3].isdigit():
        return None, True
    if len(text) > 3 and text[3:4] not in (b" ", b"-"):
        return None, True
    return int(text[:3]), text[3:4] != b"-"


async def _reply(reader: asyncio.StreamReader, timeout: float, what: str) -> int | None:
    while True:
        try:
            async with asyncio.timeout(timeout):
                line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise SmtpError(f"connection closed waiting for {what}") from None
        except asyncio.LimitOverrunError:
            raise SmtpError(f"{what} line too long") from None
        except TimeoutError:
            raise SmtpError(f"timed out waiting for {what}") from None
        code, final = reply_code(line)
        if final:
            return code


async def run(conf: CheckerConf) -> Result:
    target = f"SMTP_CHECK {hostport(conf.connect_ip, conf.connect_port)}"
    helo = str(conf.options.get("helo_name") or DEFAULT_HELO)
    timeout = conf.connect_timeout
    try:
        sock = await connect_tcp(conf)
    except (OSError, TimeoutError) as e:
        return Result(False, f"{target}: connection failed: {describe_error(e)}")
    try:
        reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_LINE)
    except OSError as e:
        sock.close()
        return Result(False, f"{target}: {describe_error(e)}")
    try:
        code = await _reply(reader, timeout, "greeting")
        if code != 220:
            return Result(False, f"{target}: bad greeting banner (code {code})")
        writer.write(f"HELO {helo}\r\n".encode())
        code = await _reply(reader, timeout, "HELO reply")
        if code != 250:
            return Result(False, f"{target}: bad HELO response (code {code})")
        writer.write(b"QUIT\r\n")
        await _reply(reader, timeout, "QUIT reply")
        return Result(True, f"{target}: greeting, HELO and QUIT OK")
    except SmtpError as e:
        return Result(False, f"{target}: {e}")
    except OSError as e:
        return Result(False, f"{target}: {describe_error(e)}")
    finally:
        writer.transport.abort()
