"""global_defs, the SSL block and track_file blocks of keepalived.conf (keepalived 2.2).

Mirrors global_parser.c (the keywords of ``global_defs`` and the global
keywords outside it), check_parser.c's ``SSL`` block (the context of SSL_GET
checkers) and trackers/track_file.c (``track_file`` blocks, which FILE_CHECK
checkers name).  Also lists the VRRP / BFD / static-configuration blocks the
checker side leaves alone (``VRRP_ROOTS``): they are kept raw.

Deliberate difference: the global keywords are stored, not acted on, apart
from the few the checker side reads (checker_log_all_failures,
enable_script_security); ``net_namespace*`` is a warning, since pylvsd runs in
its own namespace.
"""

from __future__ import annotations

from pylvs.config.model import Node
from pylvs.config.values import Reader, names, put

# Blocks of the VRRP / BFD / static-configuration side, kept raw.
VRRP_ROOTS = frozenset(
    names(
        "vrrp_instance vrrp_sync_group vrrp_script vrrp_track_process garp_group track_group "
        "static_ipaddress static_routes static_rules linkbeat_interfaces "
        "interface_up_down_delays bfd_instance track_file vrrp_track_file"
    )
)
# Global keywords outside global_defs (global_parser.c install_keyword_root).
GLOBAL_ROOTS = frozenset(
    names(
        "linkbeat_use_polling net_namespace net_namespace_ipvs namespace_with_ipsets "
        "use_pid_dir instance child_wait_time"
    )
)
GLOBAL_DEFS = frozenset(
    names(
        """process_names process_name vrrp_process_name checker_process_name lvs_process_name
    bfd_process_name router_id notification_email_from smtp_server smtp_helo_name
    smtp_connect_timeout notification_email smtp_alert startup_script startup_script_timeout
    shutdown_script shutdown_script_timeout max_auto_priority min_auto_priority_delay
    smtp_alert_vrrp smtp_alert_checker checker_log_all_failures dynamic_interfaces
    no_email_faults default_interface disable_local_igmp lvs_timeouts lvs_flush
    lvs_flush_on_stop lvs_flush_onstop lvs_sync_daemon vrrp_mcast_group4 vrrp_mcast_group6
    vrrp_garp_master_delay vrrp_garp_master_repeat vrrp_garp_master_refresh
    vrrp_garp_master_refresh_repeat vrrp_garp_lower_prio_delay vrrp_garp_lower_prio_repeat
    vrrp_down_timer_adverts vrrp_garp_interval vrrp_gna_interval vrrp_min_garp
    vrrp_garp_extra_if vrrp_vmac_garp_intvl vrrp_lower_prio_no_advert
    vrrp_higher_prio_send_advert vrrp_version vrrp_iptables vrrp_ipsets nftables
    nftables_priority nftables_ifindex nftables_ipvs nftables_ipvs_priority
    nftables_ipvs_start_fwmark nftables_counters vrrp_check_unicast_src
    vrrp_skip_check_adv_addr vrrp_strict vrrp_priority vrrp_no_swap vrrp_rt_priority
    vrrp_cpu_affinity vrrp_rlimit_rttime vrrp_rlimit_rtime notify_fifo notify_fifo_script
    vrrp_notify_fifo vrrp_notify_fifo_script vrrp_notify_priority_changes
    fifo_write_vrrp_states_on_reload lvs_notify_fifo lvs_notify_fifo_script checker_priority
    checker_no_swap checker_rt_priority checker_cpu_affinity checker_rlimit_rttime
    checker_rlimit_rtime bfd_priority bfd_no_swap bfd_rt_priority bfd_cpu_affinity
    bfd_rlimit_rttime bfd_rlimit_rtime snmp_socket enable_traps enable_snmp_vrrp
    enable_snmp_keepalived enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3
    enable_snmp_checker enable_dbus dbus_service_name script_user enable_script_security
    vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs
    vrrp_netlink_monitor_rcv_bufs_force process_monitor_rcv_bufs
    process_monitor_rcv_bufs_force lvs_netlink_cmd_rcv_bufs lvs_netlink_cmd_rcv_bufs_force
    lvs_netlink_monitor_rcv_bufs lvs_netlink_monitor_rcv_bufs_force rs_init_notifies
    no_checker_emails vrrp_rx_bufs_policy vrrp_rx_bufs_multiplier vrrp_startup_delay
    log_unknown_vrids vmac_prefix vmac_addr_prefix umask random_seed reload_check_config
    reload_time_file reload_repeat reload_file include_check config_save_dir
    tmp_config_directory data_use_instance"""
    )
)
TRACK_FILE_ROOTS = ("track_file", "vrrp_track_file")


def global_value(n: Node) -> object:
    """A global_defs value: True, a word, words, or the words of a { } block."""
    if n.children is not None:
        return tuple(w for c in n.children for w in c.words)
    args = n.words[1:]
    return True if not args else args[0] if len(args) == 1 else tuple(args)


def read_global_defs(p: Reader, n: Node, defs: dict[str, object]) -> None:
    """A ``global_defs { }`` block, into ``defs``."""
    for c in p.block(n) or ():
        kw = c.words[0]
        if kw in GLOBAL_DEFS:
            defs[kw] = global_value(c)
        else:
            p.unknown(c, "in global_defs")


def read_global_root(p: Reader, n: Node, defs: dict[str, object]) -> None:
    """A global keyword written outside global_defs (one of ``GLOBAL_ROOTS``)."""
    kw = n.words[0]
    defs[kw] = global_value(n)
    if kw.startswith("net_namespace"):
        p.warn(n, f"'{kw}' is not supported: pylvsd uses its own namespace")


def read_ssl(p: Reader, n: Node, defs: dict[str, object]) -> None:
    """``SSL { password ca certificate key }``: ``defs["SSL"]``, a dict of those given."""
    ssl: dict[str, str] = {}
    for c in p.block(n) or ():
        kw = c.words[0]
        if kw in ("password", "ca", "certificate", "key") and p.leaf(c):
            put(ssl, kw, p.arg(c, 1, 1))
        else:
            p.unknown(c, "in SSL")
    defs["SSL"] = ssl


def read_track_file(p: Reader, n: Node, track_files: dict[str, dict[str, object]]) -> None:
    """``track_file NAME { file weight init_file }`` into ``track_files[NAME]``."""
    named = p.named_block(n)
    if named is None:
        return
    name, kids = named
    tf: dict[str, object] = {"weight": 1, "reverse": False}
    for c in kids:
        kw = c.words[0]
        if kw == "file" and p.leaf(c):
            tf["file"] = p.arg(c, 1, 1)
        elif kw == "weight" and p.leaf(c):
            put(tf, "weight", p.uint(c, -254, 254, most=2))
            if len(c.words) > 2:
                if c.words[2] != "reverse":
                    p.error(c, f"unknown track_file weight option '{c.words[2]}'")
                tf["reverse"] = True
        elif kw == "init_file" and p.leaf(c):
            tf["init_file"] = tuple(c.words[1:])
        else:
            p.unknown(c, "in track_file")
    if tf.get("file") is None:
        p.error(n, f"track_file {name} has no file")
        return
    track_files[name] = tf
