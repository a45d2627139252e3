"""High availability: VRRP (keepalived's vrrp side).

- ``vrrp_conf``: vrrp_instance / vrrp_script / vrrp_sync_group from keepalived.conf;
- ``vrrp``: the pure state machine (no I/O, ``now`` passed in);
- ``vrrp_io``: the asyncio adapter (raw sockets, ``ip addr``, gratuitous ARP, scripts)
  and ``VrrpManager``; ``python -m pylvs.ha.vrrp_io -f keepalived.conf`` runs it alone.
"""
