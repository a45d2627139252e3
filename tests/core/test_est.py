"""Rate estimator vectors derived by hand from ip_vs_est.c.

Kernel arithmetic used for every expected value below (one sample per 2 s):

    rate = (cur - last) << 9          # conns/pkts, scaled 2^10 per second
    rate = (cur - last) << 4          # bytes, scaled 2^5 per second
    avg += (rate - avg) >> 2          # s64, arithmetic shift = floor
    read = (avg + 0x1FF) >> 10        # cps / pps
    read = (avg + 0xF) >> 5           # bytes per second

Each expected number was worked out on paper from those lines. None of them
was copied from this module's output.
"""

from __future__ import annotations

import pytest

from pylvs.core.est import U64, Estimator, EstimatorSet, Rates
from pylvs.core.model import Stats


def _est() -> tuple[Stats, Estimator]:
    s = Stats()
    return s, Estimator(s)


# --------------------------------------------------------------------------
# Estimator: the EWMA itself


def test_constant_conns_first_samples_and_convergence() -> None:
    # 100 new connections every 2 s = 50 conn/s.  rate = 100 << 9 = 51200.
    # S1: avg = 0     + (51200 - 0)     >> 2 = 0     + 12800 = 12800
    #     read = (12800 + 511) >> 10 = 13311 // 1024 = 12
    # S2: avg = 12800 + (51200 - 12800) >> 2 = 12800 + 9600  = 22400
    #     read = 22911 // 1024 = 22
    # S3: avg = 22400 + (28800 >> 2 = 7200)                 = 29600
    #     read = 30111 // 1024 = 29
    # S4: avg = 29600 + (21600 >> 2 = 5400)                 = 35000
    #     read = 35511 // 1024 = 34
    s, e = _est()
    expected = [(12800, 12), (22400, 22), (29600, 29), (35000, 34)]
    for avg, shown in expected:
        s.conns += 100
        e.sample()
        assert e.cps == avg
        assert e.rates().cps == shown
    # The gap d = 51200 - avg shrinks by d >> 2 per sample and stops moving
    # once d < 4.  From 51200 the gaps run 38400, 28800, 21600, 16200,
    # 12150, 9113, ..., 11, 9, 7, 6, 5, 4, 3: the average settles at 51197
    # after 36 samples.
    for _ in range(40):
        s.conns += 100
        e.sample()
    assert e.cps == 51200 - 3
    assert e.rates().cps == 50  # (51197 + 511) >> 10 = 51708 // 1024 = 50


def test_bytes_scaling() -> None:
    # 1000 bytes in and 3000 bytes out every 2 s (500 B/s, 1500 B/s).
    # in:  rate = 1000 << 4 = 16000
    #   S1: avg = 16000 >> 2 = 4000             read = (4000 + 15) >> 5 = 125
    #   S2: avg = 4000 + (12000 >> 2) = 7000    read = 7015 // 32 = 219
    #   S3: avg = 7000 + (9000 >> 2) = 9250     read = 9265 // 32 = 289
    #   S4: avg = 9250 + (6750 >> 2 = 1687) = 10937   read = 10952 // 32 = 342
    # out: rate = 3000 << 4 = 48000
    #   S1: avg = 12000                          read = 12015 // 32 = 375
    s, e = _est()
    expected_in = [(4000, 125), (7000, 219), (9250, 289), (10937, 342)]
    for i, (avg, shown) in enumerate(expected_in):
        s.inbytes += 1000
        s.outbytes += 3000
        e.sample()
        assert e.inbps == avg
        assert e.rates().inbps == shown
        if i == 0:
            assert e.outbps == 12000
            assert e.rates().outbps == 375
    # Converges like the cps case to rate - 3 (16000 -> 15997, 48000 -> 47997):
    # (15997 + 15) >> 5 = 500 and (47997 + 15) >> 5 = 1500.
    for _ in range(60):
        s.inbytes += 1000
        s.outbytes += 3000
        e.sample()
    assert (e.inbps, e.outbps) == (16000 - 3, 48000 - 3)
    assert e.rates() == Rates(0, 0, 0, 500, 1500)


def test_packets_and_a_half_rate_reads_low() -> None:
    # inpkts 30 per 2 s: rate = 30 << 9 = 15360; S1 avg = 3840,
    #   read = (3840 + 511) >> 10 = 4351 // 1024 = 4.
    # outpkts 7 per 2 s (3.5 pkt/s): rate = 3584; S1 avg = 896,
    #   read = 1407 // 1024 = 1.  Converged avg = 3584 - 3 = 3581,
    #   read = 4092 // 1024 = 3 (the -3 residue rounds 3.5 down).
    s, e = _est()
    s.inpkts += 30
    s.outpkts += 7
    e.sample()
    assert (e.inpps, e.outpps) == (3840, 896)
    assert (e.rates().inpps, e.rates().outpps) == (4, 1)
    for _ in range(60):
        s.inpkts += 30
        s.outpkts += 7
        e.sample()
    assert (e.inpps, e.outpps) == (15360 - 3, 3584 - 3)
    assert (e.rates().inpps, e.rates().outpps) == (15, 3)


def test_first_sample_after_burst_then_silence() -> None:
    # 1000 connections in the first 2 s, then none.
    # S1: rate = 1000 << 9 = 512000; avg = 128000; read = 128511 // 1024 = 125
    # S2: rate = 0; avg += (-128000) >> 2 = -32000 -> 96000; read = 96511 // 1024 = 94
    # S3: avg += (-96000) >> 2 = -24000 -> 72000; read = 72511 // 1024 = 70
    # S4: avg += (-72000) >> 2 = -18000 -> 54000; read = 54511 // 1024 = 53
    s, e = _est()
    s.conns = 1000
    expected = [(128000, 125), (96000, 94), (72000, 70), (54000, 53)]
    for avg, shown in expected:
        e.sample()
        assert e.cps == avg
        assert e.rates().cps == shown
    # With a floor shift the decay reaches exactly 0 (see the test below).
    for _ in range(80):
        e.sample()
    assert e.cps == 0
    assert e.rates() == Rates(0, 0, 0, 0, 0)


def test_negative_smoothing_is_an_arithmetic_shift() -> None:
    # rate 0, avg 1001: (0 - 1001) >> 2 = floor(-250.25) = -251 -> 750
    # (a truncating division would give -250 -> 751).
    _, e = _est()
    e.cps = 1001
    e.sample()
    assert e.cps == 750
    # The tail: 5 -> 5 + (-5 >> 2 = -2) = 3 -> 3 + (-1) = 2 -> 1 -> 0 -> 0
    # (truncation would stop at 3 for ever).
    e.cps = 5
    tail = []
    for _ in range(5):
        e.sample()
        tail.append(e.cps)
    assert tail == [3, 2, 1, 0, 0]


def test_rate_drop_converges_down_exactly() -> None:
    # Settle at 100 conns / 2 s (avg 51197, see above), then 20 conns / 2 s:
    # rate = 20 << 9 = 10240.
    # S1: 51197 + ((10240 - 51197) >> 2) = 51197 + floor(-10239.25)
    #     = 51197 - 10240 = 40957;      read = 41468 // 1024 = 40
    # S2: 40957 + ((10240 - 40957) >> 2) = 40957 + floor(-7679.25)
    #     = 40957 - 7680 = 33277;       read = 33788 // 1024 = 32
    # From above the gap d shrinks by ceil(d / 4), so it reaches 0 exactly.
    s, e = _est()
    for _ in range(40):
        s.conns += 100
        e.sample()
    assert e.cps == 51197
    for avg, shown in [(40957, 40), (33277, 32)]:
        s.conns += 20
        e.sample()
        assert e.cps == avg
        assert e.rates().cps == shown
    for _ in range(60):
        s.conns += 20
        e.sample()
    assert e.cps == 10240
    assert e.rates().cps == 10


def test_readout_rounding() -> None:
    # (x + 0x1FF) >> 10: half (512) rounds down, above half rounds up.
    _, e = _est()
    for scaled, shown in [(0, 0), (511, 0), (512, 0), (513, 1), (1536, 1), (1537, 2)]:
        e.cps = e.inpps = e.outpps = scaled
        r = e.rates()
        assert (r.cps, r.inpps, r.outpps) == (shown, shown, shown)
    # (x + 0xF) >> 5: half (16) rounds down, 17 rounds up.
    for scaled, shown in [(15, 0), (16, 0), (17, 1), (48, 1), (49, 2)]:
        e.inbps = e.outbps = scaled
        r = e.rates()
        assert (r.inbps, r.outbps) == (shown, shown)


# --------------------------------------------------------------------------
# 64-bit behaviour


def test_counter_wrapping_past_2_64_is_a_normal_delta() -> None:
    # u64 counter: last = 2^64 - 10, now 2^64 + 90 which the kernel holds as 90.
    # delta = (90 - (2^64 - 10)) mod 2^64 = 100 -> avg 12800, read 12.
    s, e = _est()
    s.conns = (1 << 64) - 10
    e.zero()
    s.conns = (1 << 64) + 90
    e.sample()
    assert e.cps == 12800
    assert e.rates().cps == 12


def test_counter_going_backwards_wraps_like_the_kernel() -> None:
    # S1: conns 100 -> avg 12800, last 100.  Then the counter drops to 0
    # without zeroing the estimator:
    #   delta = 2^64 - 100; rate = (delta << 9) mod 2^64 = 2^64 - 51200 = -51200 (s64)
    #   avg += (-51200 - 12800) >> 2 = -16000 -> -3200 = 2^64 - 3200 (u64)
    #   read = ((2^64 - 3200 + 511) mod 2^64) >> 10 = (2^64 - 2689) >> 10
    #        = (2^64 - 3 * 1024 + 383) >> 10 = 2^54 - 3
    s, e = _est()
    s.conns = 100
    e.sample()
    s.conns = 0
    e.sample()
    assert e.cps == (1 << 64) - 3200
    assert e.rates().cps == (1 << 54) - 3


def test_shifted_rate_wraps_at_64_bits() -> None:
    # A byte delta of 2^60 + 1000: (delta << 4) mod 2^64 = 16000, the same as
    # a delta of 1000 -> avg 4000, read 125.
    s, e = _est()
    s.inbytes = (1 << 60) + 1000
    e.sample()
    assert e.inbps == 4000
    assert e.rates().inbps == 125


def test_readout_addition_wraps_at_64_bits() -> None:
    # avg = 2^64 - 1 (-1 as s64): (2^64 - 1 + 511) mod 2^64 = 510 -> 510 >> 10 = 0
    _, e = _est()
    e.cps = U64
    e.inbps = U64
    assert e.rates().cps == 0
    assert e.rates().inbps == 0  # (2^64 - 1 + 15) mod 2^64 = 14 -> 14 >> 5 = 0


# --------------------------------------------------------------------------
# Zeroing


def test_zero_clears_averages_and_takes_counters_as_baseline() -> None:
    # Three samples at 100 conns / 2 s: avg 29600 (see the first test).
    s, e = _est()
    for _ in range(3):
        s.conns += 100
        s.inbytes += 1000
        e.sample()
    assert e.cps == 29600
    e.zero()
    assert e.rates() == Rates(0, 0, 0, 0, 0)
    assert (e.cps, e.inbps) == (0, 0)
    assert (e.last_conns, e.last_inbytes) == (300, 3000)
    # The next sample counts only the 100 new connections: avg 12800, read 12.
    s.conns += 100
    e.sample()
    assert e.cps == 12800
    assert e.rates().cps == 12


def test_zero_after_stats_zero() -> None:
    s, e = _est()
    s.conns = 500
    e.sample()
    s.zero()
    e.zero()
    assert e.last_conns == 0
    s.conns = 100
    e.sample()
    assert e.cps == 12800


def test_zero_stats_keeps_unsampled_traffic_like_the_kernel() -> None:
    # Kernel: sample at 100 conns sets kstats = last = 100.  40 more arrive,
    # then ip_vs_zero_stats sets kstats0 = kstats = 100 and last = 100 (the
    # snapshot, not the live 140).  60 more arrive; the next sample reads
    # 200 and sees delta 100 -> avg 12800.
    s, e = _est()
    s.conns = 100
    e.sample()
    s.conns += 40
    e.zero_stats()
    assert s.conns == 0
    assert e.rates() == Rates(0, 0, 0, 0, 0)
    s.conns += 60
    e.sample()
    assert e.cps == 12800
    assert e.rates().cps == 12
    # and later deltas are ordinary again
    s.conns += 100
    e.sample()
    assert e.cps == 22400


# --------------------------------------------------------------------------
# EstimatorSet: the clock


def test_first_tick_only_sets_the_phase() -> None:
    es = EstimatorSet()
    s = Stats()
    e = es.add("svc", s)
    s.conns = 100
    assert es.tick(10.0) == 0
    assert e.cps == 0
    assert es.next_due == 12.0
    assert es.tick(11.999) == 0
    assert e.cps == 0
    assert es.tick(12.0) == 1
    assert e.cps == 12800  # 100 << 9 >> 2
    assert es.next_due == 14.0


def test_late_tick_replays_missed_periods_keeping_phase() -> None:
    # Phase at 0 (next due 2.0).  At 6.5, the samples due at 2, 4 and 6 are
    # all late: 3 samples.  The first sees the 300 connections:
    # S1: rate = 300 << 9 = 153600 -> avg 38400
    # S2: rate 0 -> 38400 + (-38400 >> 2) = 28800
    # S3: rate 0 -> 28800 + (-28800 >> 2) = 21600
    es = EstimatorSet()
    s = Stats()
    e = es.add("svc", s)
    es.tick(0.0)
    s.conns = 300
    assert es.tick(6.5) == 3
    assert e.cps == 21600
    assert es.next_due == 8.0


def test_catchup_limit_and_rephase() -> None:
    # Exactly MAX_CATCHUP (10) periods due: all replayed.
    es = EstimatorSet()
    es.add("svc", Stats())
    es.tick(0.0)
    assert es.tick(2.0 + 9 * 2.0) == 10
    assert es.next_due == 22.0
    # 11 due: one sample, phase moves to now.
    assert es.tick(22.0 + 10 * 2.0) == 1
    assert es.next_due == 44.0
    # A long suspension: one sample that sees all the traffic.
    # rate = 300 << 9 = 153600 -> avg 38400
    s = Stats()
    e = es.add("other", s)
    s.conns = 300
    assert es.tick(1000.5) == 1
    assert e.cps == 38400
    assert es.next_due == 1002.5


def test_max_catchup_one_is_kernel_like_rephase() -> None:
    es = EstimatorSet(max_catchup=1)
    es.add("svc", Stats())
    es.tick(0.0)
    assert es.tick(3.9) == 1  # one period late: keeps phase
    assert es.next_due == 4.0
    assert es.tick(8.0) == 1  # two periods due: one sample, re-phase
    assert es.next_due == 10.0


def test_clock_going_backwards_rephases() -> None:
    es = EstimatorSet()
    s = Stats()
    e = es.add("svc", s)
    es.tick(100.0)
    assert es.tick(101.0) == 0  # just early: phase kept
    assert es.next_due == 102.0
    assert es.tick(50.0) == 0  # more than a period back: re-phase
    assert es.next_due == 52.0
    s.conns = 100
    assert es.tick(52.0) == 1
    assert e.cps == 12800


def test_estimators_added_mid_period_share_the_phase() -> None:
    es = EstimatorSet()
    a = Stats()
    ea = es.add("a", a)
    es.tick(0.0)
    b = Stats()
    eb = es.add("b", b)  # added at t = 1.0, first sampled at t = 2.0
    a.conns = 100
    b.conns = 8
    assert es.tick(2.0) == 1
    assert ea.cps == 12800
    assert eb.cps == (8 << 9) >> 2 == 1024


def test_add_get_remove_insert() -> None:
    es = EstimatorSet()
    s = Stats()
    e = es.add(("svc", 1), s)
    assert es.get(("svc", 1)) is e
    assert ("svc", 1) in es
    assert len(es) == 1
    with pytest.raises(ValueError):
        es.add(("svc", 1), Stats())
    es.tick(0.0)
    s.conns = 100
    es.tick(2.0)
    assert e.cps == 12800
    # Stopped: not sampled any more, state kept (like a dest in the trash).
    assert es.remove(("svc", 1)) is e
    assert es.get(("svc", 1)) is None
    assert es.remove(("svc", 1)) is None
    s.conns = 200
    es.tick(4.0)
    assert e.cps == 12800
    # Restarted with its state: the next sample sees the 100 connections
    # since its last sample: 12800 + (51200 - 12800) >> 2 = 22400.
    es.insert(("svc", 1), e)
    es.tick(6.0)
    assert e.cps == 22400


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        EstimatorSet(period=0)
    with pytest.raises(ValueError):
        EstimatorSet(max_catchup=0)


def test_ten_thousand_estimators() -> None:
    # Estimator i sees i connections in its first period:
    # avg = (i << 9) >> 2 = i << 7; read = ((i << 7) + 511) >> 10.
    # i = 8: 1024 -> 1535 // 1024 = 1;  i = 9999: 1279872 -> 1280383 // 1024 = 1250.
    es = EstimatorSet()
    stats = [Stats() for _ in range(10_000)]
    for i, s in enumerate(stats):
        es.add(i, s)
        s.conns = i
    es.tick(0.0)
    assert es.tick(2.0) == 1
    e0, e8, e_last = es.get(0), es.get(8), es.get(9999)
    assert e0 is not None and e8 is not None and e_last is not None
    assert e0.rates().cps == 0
    assert (e8.cps, e8.rates().cps) == (1024, 1)
    assert (e_last.cps, e_last.rates().cps) == (1279872, 1250)
