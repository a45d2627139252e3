"""CheckState/ServerHealth against sequences worked out by hand from keepalived 2.2's
check_tcp.c/check_misc.c epilogs and ipwrapper.c (see pylvs/check/state.py)."""

from __future__ import annotations

import pytest

from pylvs.check.file import judge as file_judge
from pylvs.check.file import strtol
from pylvs.check.misc import ScriptExit
from pylvs.check.misc import judge as misc_judge
from pylvs.check.state import CheckState, Result, ServerChange, ServerHealth
from tests.check.helpers import conf

OK = Result(True, "ok")
FAIL = Result(False, "refused")

# (time of the result, result) -> (next check at, transition)
Step = tuple[float, Result, float, str | None]


def play(state: CheckState, steps: list[Step]) -> None:
    for i, (t, res, next_at, transition) in enumerate(steps):
        out = state.result(res, t)
        assert (out.next_at, out.transition) == (next_at, transition), f"step {i} at t={t}"


def test_retry_then_down_then_no_retry_while_down_then_up() -> None:
    s = CheckState(delay_loop=10, retry=2, delay_before_retry=3)
    assert s.up and not s.has_run
    play(
        s,
        [
            (0, OK, 10, None),  # up already: no transition
            (10, FAIL, 13, None),  # retry 1/2
            (13, FAIL, 16, None),  # retry 2/2
            (16, FAIL, 26, "down"),  # final: down after 2 retries, back to delay_loop
            (26, FAIL, 36, None),  # down: failures are not retried
            (36, OK, 46, "up"),
            (46, OK, 56, None),
        ],
    )


def test_success_between_retries_resets_the_count() -> None:
    s = CheckState(delay_loop=5, retry=1, delay_before_retry=1)
    play(
        s,
        [
            (0, FAIL, 1, None),  # retry 1/1
            (1, OK, 6, None),  # saved: count back to 0
            (6, FAIL, 7, None),  # retry 1/1 again, not down
            (7, FAIL, 12, "down"),
        ],
    )
    assert s.retry_it == 0


def test_retry_zero_fails_at_once() -> None:
    s = CheckState(delay_loop=2, retry=0, delay_before_retry=1)
    play(s, [(0, FAIL, 2, "down"), (2, OK, 4, "up")])


def test_alpha_starts_down_and_comes_up_on_first_success() -> None:
    s = CheckState(delay_loop=6, retry=3, delay_before_retry=2, alpha=True)
    assert not s.up
    play(s, [(0, OK, 6, "up"), (6, FAIL, 8, None)])


def test_alpha_first_failure_is_retried_then_confirmed_without_transition() -> None:
    s = CheckState(delay_loop=6, retry=1, delay_before_retry=2, alpha=True)
    out = s.result(FAIL, 0)
    assert (out.next_at, out.transition, out.retrying) == (2, None, True)
    out = s.result(FAIL, 2)  # confirmed down: it was down already
    assert (out.next_at, out.transition, out.retrying) == (8, None, False)
    assert out.log is not None and "first check" in out.log
    play(s, [(8, FAIL, 14, None), (14, OK, 20, "up")])


def test_warmup_scales_the_random_draw() -> None:
    s = CheckState(delay_loop=60, warmup=10)
    assert s.start(100, 0.0) == 100
    assert s.start(100, 0.5) == 105
    assert s.start(100, 1.0) == 110
    assert s.start(100, 7.0) == 110  # clamped
    assert CheckState(delay_loop=60).start(100, 0.9) == 100  # no warmup: at once


def test_misc_counts_its_period_from_the_script_start() -> None:
    s = CheckState.for_conf(conf("MISC_CHECK", delay_loop=10, retry=1, delay_before_retry=4))
    assert s.from_start
    assert s.result(OK, 103, started=100).next_at == 110
    assert s.result(OK, 125, started=112).next_at == 125  # ran longer than the loop: now
    assert s.result(FAIL, 131, started=130).next_at == 134  # retry from the start too
    tcp = CheckState.for_conf(conf("TCP_CHECK", delay_loop=10))
    assert tcp.result(OK, 103, started=100).next_at == 113


def test_for_conf_takes_alpha_and_file_check_has_no_retry_nor_alpha() -> None:
    c = conf("TCP_CHECK", delay_loop=3, retry=4, delay_before_retry=2, warmup=1, alpha=True)
    s = CheckState.for_conf(c)
    assert (s.delay_loop, s.retry, s.delay_before_retry, s.warmup, s.up) == (3, 4, 2, 1, False)
    f = CheckState.for_conf(conf("FILE_CHECK", delay_loop=60, retry=4, alpha=True))
    assert (f.retry, f.up, f.warmup, f.delay_loop) == (0, True, 0, 1.0)  # polled each second
    play(f, [(0, FAIL, 1, "down")])


def test_log_all_failures_reports_each_retried_failure() -> None:
    quiet = CheckState(delay_loop=5, retry=2)
    loud = CheckState(delay_loop=5, retry=2, log_all_failures=True)
    assert quiet.result(FAIL, 0).log is None
    out = loud.result(FAIL, 0)
    assert out.retrying and out.log == "failed, retry 1/2: refused"
    loud.result(FAIL, 1)
    out = loud.result(FAIL, 2)
    assert out.transition == "down" and out.log == "down after 2 retries: refused"


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        CheckState(delay_loop=0)
    with pytest.raises(ValueError):
        CheckState(delay_loop=1, retry=-1)


# -- MISC_CHECK exit status -> result (check_misc.c misc_check_child_thread) ---------


@pytest.mark.parametrize(
    ("code", "dynamic", "ok", "weight", "offset"),
    [
        (0, False, True, None, None),
        (0, True, True, None, 0),  # back to the configured weight
        (1, False, False, None, None),
        (1, True, False, None, None),
        (2, False, False, None, None),
        (2, True, True, 0, None),
        (12, True, True, 10, None),
        (255, True, True, 253, None),
        (-15, True, False, None, None),  # killed by SIGTERM
    ],
)
def test_misc_exit_codes(
    code: int, dynamic: bool, ok: bool, weight: int | None, offset: int | None
) -> None:
    r = misc_judge(ScriptExit(code), dynamic)
    assert (r.ok, r.weight, r.offset) == (ok, weight, offset)


def test_misc_timeout_fails() -> None:
    assert not misc_judge(ScriptExit(-15, timed_out=True), True).ok
    assert not misc_judge(ScriptExit(None, error="no such file"), False).ok


# -- FILE_CHECK (track_file.c) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("  17\n", 17),
        ("-3", -3),
        ("+5x", 5),
        ("0x1f", 31),
        ("010", 8),  # octal, as strtol(..., 0)
        ("08", 0),
        ("abc", 0),
        ("", 0),
    ],
)
def test_strtol(text: str, value: int) -> None:
    assert strtol(text) == value


@pytest.mark.parametrize(
    ("value", "weight", "reverse", "ok", "offset"),
    [
        (0, 0, False, True, None),
        (1, 0, False, False, None),
        (-7, 0, False, False, None),
        (0, 0, True, False, None),  # reverse: 0 is the fault
        (3, 0, True, True, None),
        (0, 1, False, True, 0),
        (5, 1, False, True, 5),
        (5, -2, False, True, -10),
        (5, 2, True, True, -10),
        (-(2**31), 1, False, False, None),  # IPVS_WEIGHT_FAULT
    ],
)
def test_file_values(value: int, weight: int, reverse: bool, ok: bool, offset: int | None) -> None:
    r = file_judge(value, weight, reverse)
    assert (r.ok, r.offset) == (ok, offset)


# -- ServerHealth: all checkers up, weights ---------------------------------------------


def test_server_is_up_only_when_all_checkers_are_up() -> None:
    a = CheckState(delay_loop=1, retry=0)
    b = CheckState(delay_loop=1, retry=0)
    h = ServerHealth([a, b], weight=3)
    assert h.up and h.reported == (True, None)
    a.result(FAIL, 0)
    assert h.update("a failed") == ServerChange(False, None, "a failed")
    b.result(FAIL, 0)
    assert h.update("b failed") is None  # still down
    a.result(OK, 1)
    assert h.update("a ok") is None  # b still down
    b.result(OK, 1)
    assert h.update("b ok") == ServerChange(True, None, "b ok")
    assert ServerHealth([]).up


def test_alpha_server_starts_down() -> None:
    h = ServerHealth([CheckState(delay_loop=1, alpha=True), CheckState(delay_loop=1)])
    assert h.reported == (False, None)


def test_misc_dynamic_and_file_weights() -> None:
    misc = CheckState(delay_loop=1, retry=0)
    file = CheckState(delay_loop=1, retry=0)
    h = ServerHealth([misc, file], weight=5)
    out = misc.result(Result(True, "exit 10", weight=8), 0)
    assert out.weight_changed and out.transition is None
    assert h.update("exit 10") == ServerChange(True, 8, "exit 10")
    assert not misc.result(Result(True, "exit 10", weight=8), 1).weight_changed
    file.result(Result(True, "value 3", offset=3), 1)
    assert h.update() == ServerChange(True, 11, "")  # 5 + (8 - 5) + 3
    misc.result(Result(True, "exit 0", offset=0), 2)
    assert h.update() == ServerChange(True, 8, "")  # 5 + 3
    file.result(Result(True, "value -9", offset=-9), 3)
    assert h.update() == ServerChange(True, 0, "")  # clamped at 0
    file.result(Result(True, "value 0", offset=0), 4)
    assert h.update() == ServerChange(True, None, "")  # configured weight again
    file.result(Result(True, "big", offset=10**6), 5)
    assert h.update() == ServerChange(True, 65535, "")


def test_a_checker_going_down_drops_its_weight() -> None:
    misc = CheckState(delay_loop=1, retry=0)
    h = ServerHealth([misc], weight=1)
    misc.result(Result(True, "exit 5", weight=3), 0)
    assert h.update() == ServerChange(True, 3, "")
    out = misc.result(Result(False, "exit 1"), 1)
    assert out.transition == "down" and out.weight_changed
    assert h.update("exit 1") == ServerChange(False, None, "exit 1")
