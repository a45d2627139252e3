"""Rule table validation: libipvs texts, ipvsadm semantics, nothing changed on refusal."""

from __future__ import annotations

import errno
from ipaddress import ip_address

import pytest

from pylvs.core.errors import IPVSError
from pylvs.core.model import (
    SVC_F_PERSISTENT,
    DestSpec,
    Fwd,
    Proto,
    ServiceKey,
    ServiceSpec,
    TunType,
)
from pylvs.core.table import Op, Table

K = ServiceKey.inet(Proto.TCP, "10.0.0.1", 80)


def dspec(
    addr: str, port: int = 80, fwd: Fwd = Fwd.MASQ, weight: int = 1, **kw: object
) -> DestSpec:
    return DestSpec(ip_address(addr), port, fwd, weight, **kw)  # type: ignore[arg-type]


def snapshot(t: Table) -> object:
    return repr(t.specs())


@pytest.fixture
def table() -> Table:
    t = Table()
    t.add_service(ServiceSpec(K, "rr"))
    t.add_dest(K, dspec("192.168.0.2"))
    return t


def refused(t: Table, message: str, fn: object, *args: object) -> IPVSError:
    before = snapshot(t)
    gen = t.generation
    with pytest.raises(IPVSError) as ei:
        fn(*args)  # type: ignore[operator]
    assert ei.value.message == message
    assert snapshot(t) == before
    assert t.generation == gen
    return ei.value


def test_service_errors(table: Table) -> None:
    refused(table, "Service already exists", table.add_service, ServiceSpec(K, "wlc"))
    other = ServiceKey.inet(Proto.TCP, "10.0.0.9", 80)
    refused(table, "No such service", table.edit_service, ServiceSpec(other))
    refused(table, "No such service", table.del_service, other)
    refused(table, "No such service", table.zero, other)
    e = refused(
        table,
        "Scheduler or persistence engine not found",
        table.add_service,
        ServiceSpec(other, "nosuch"),
    )
    assert e.errno == errno.ENOENT
    refused(
        table,
        "Scheduler or persistence engine not found",
        table.edit_service,
        ServiceSpec(K, "bogus"),
    )
    refused(
        table,
        "Scheduler or persistence engine not found",
        table.add_service,
        ServiceSpec(other, "rr", pe_name="sip"),
    )


def test_dest_errors(table: Table) -> None:
    other = ServiceKey.inet(Proto.UDP, "10.0.0.1", 80)
    refused(table, "Service not defined", table.add_dest, other, dspec("192.168.0.3"))
    refused(table, "Service not defined", table.edit_dest, other, dspec("192.168.0.2"))
    refused(table, "Service not defined", table.del_dest, other, ip_address("192.168.0.2"), 80)
    refused(table, "Destination already exists", table.add_dest, K, dspec("192.168.0.2"))
    refused(table, "No such destination", table.edit_dest, K, dspec("192.168.0.3"))
    refused(table, "No such destination", table.del_dest, K, ip_address("192.168.0.3"), 80)


def test_range_errors(table: Table) -> None:
    msg = "Numerical result out of range"
    refused(table, msg, table.add_dest, K, dspec("192.168.0.3", weight=65536))
    refused(table, msg, table.add_dest, K, dspec("192.168.0.3", weight=-1))
    refused(table, msg, table.add_dest, K, dspec("192.168.0.3", u_thresh=5, l_thresh=6))
    inval = "Invalid operation.  Possibly wrong module version, address not unicast, ..."
    refused(table, inval, table.add_dest, K, dspec("224.0.0.1"))
    refused(table, inval, table.add_dest, K, dspec("0.0.0.0"))
    refused(table, inval, table.add_dest, K, dspec("2001:db8::1"))  # mixed family, not TUN
    refused(
        table,
        inval,
        table.add_dest,
        K,
        dspec("192.168.0.3", fwd=Fwd.TUNNEL, tun_type=TunType.GUE, tun_port=0),
    )
    refused(table, inval, table.add_service, ServiceSpec(ServiceKey.inet(47, "10.0.0.1", 80)))
    v6 = ServiceKey.inet(Proto.TCP, "2001:db8::1", 80)
    refused(table, inval, table.add_service, ServiceSpec(v6, "rr", SVC_F_PERSISTENT, 300, 129))


def test_zero_port_needs_persistence(table: Table) -> None:
    k0 = ServiceKey.inet(Proto.TCP, "10.0.0.2", 0)
    refused(
        table,
        "Zero port specified for non-persistent service",
        table.add_service,
        ServiceSpec(k0, "rr"),
    )
    table.add_service(ServiceSpec(k0, "rr", SVC_F_PERSISTENT, 300))
    assert table.get(k0) is not None


def test_dr_and_tun_force_the_service_port(table: Table) -> None:
    d = table.add_dest(K, dspec("192.168.0.3", port=8080, fwd=Fwd.DROUTE))
    assert d.port == 80
    d = table.add_dest(K, dspec("192.168.0.4", port=8080, fwd=Fwd.TUNNEL))
    assert d.port == 80
    d = table.add_dest(K, dspec("192.168.0.5", port=8080, fwd=Fwd.MASQ))
    assert d.port == 8080
    # TUN may cross address families.
    d = table.add_dest(K, dspec("2001:db8::5", fwd=Fwd.TUNNEL))
    assert d.af == 10


def test_new_dest_goes_to_the_head(table: Table) -> None:
    table.add_dest(K, dspec("192.168.0.3"))
    table.add_dest(K, dspec("192.168.0.4"))
    svc = table.get(K)
    assert svc is not None
    assert [str(d.addr) for d in svc.destinations] == ["192.168.0.4", "192.168.0.3", "192.168.0.2"]


def test_edit_keeps_scheduler_state_unless_renamed(table: Table) -> None:
    svc = table.get(K)
    assert svc is not None
    sched = svc.sched
    table.edit_service(ServiceSpec(K, "rr", SVC_F_PERSISTENT, 60))
    assert svc.sched is sched and svc.timeout == 60 and svc.persistent
    table.edit_service(ServiceSpec(K, "wlc"))
    assert svc.sched is not sched and svc.sched_name == "wlc" and not svc.persistent
    table.edit_service(ServiceSpec(K, "none"))
    assert svc.sched is None


def test_flush_and_delete(table: Table) -> None:
    table.add_service(ServiceSpec(ServiceKey.mark(7), "wrr"))
    assert len(table) == 2
    table.del_service(K)
    assert len(table) == 1
    table.flush()
    assert len(table) == 0


def test_laddrs(table: Table) -> None:
    a = ip_address("10.9.0.1")
    table.add_laddr(K, a)
    refused(table, "Local address already exists", table.add_laddr, K, a)
    refused(table, "No such Local address", table.del_laddr, K, ip_address("10.9.0.2"))
    other = ServiceKey.inet(Proto.UDP, "10.0.0.1", 53)
    refused(table, "Service not defined", table.add_laddr, other, a)
    assert table.get_laddrs(K) == [a]
    table.del_laddr(K, a)
    assert table.get_laddrs(K) == []


def test_batch_is_all_or_nothing(table: Table) -> None:
    before = snapshot(table)
    k2 = ServiceKey.inet(Proto.TCP, "10.0.0.2", 80)
    ops = [
        Op("add_service", (ServiceSpec(k2, "wrr"),)),
        Op("add_dest", (k2, dspec("192.168.1.1"))),
        Op("add_dest", (K, dspec("192.168.0.2"))),  # duplicate: refused
    ]
    with pytest.raises(IPVSError) as ei:
        table.apply_batch(ops)
    assert ei.value.index == 2
    assert ei.value.message == "Destination already exists"
    assert snapshot(table) == before
    table.apply_batch(ops[:2])
    assert table.get(k2) is not None


def test_specs_round_trip(table: Table) -> None:
    table.add_dest(K, dspec("192.168.0.3", weight=5))
    table.add_service(ServiceSpec(ServiceKey.mark(3), "sh", SVC_F_PERSISTENT, 100, 0xFFFFFF00))
    copy = Table.from_specs(table.specs())
    assert repr(copy.specs()) == repr(table.specs())
