"""The real-server side of LVS DR and TUN (``pylvs realserver``).

What the seeds' ``realserver.sh`` scripts do by hand, as a command that
records what it changed and undoes exactly that: the VIP on lo as /32
(/128), arp_ignore=1 and arp_announce=2 so the real server neither answers
nor announces the VIP, strict reverse-path filtering relaxed, and for TUN a
tunnel that delivers the inner packets to the local stack (the kernel's
tunl0 when it has ipip, else the userspace decapsulator in ``decap``).
``setup`` holds the steps (start/stop/status), ``decap`` the decapsulator.
"""
