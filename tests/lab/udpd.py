"""Lab UDP real server, run as a script inside a namespace (standard library only).

Every datagram is answered with ``"NAME PEER_IP PEER_PORT"``: the peer this server saw.

    python3 udpd.py --port 53 --name rs1 [--bind 0.0.0.0]
"""

from __future__ import annotations

import argparse
import socket


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--name", default="lab")
    ap.add_argument("--bind", default="0.0.0.0")
    args = ap.parse_args()
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((args.bind, args.port))
        print(f"listening on {args.bind} port {args.port}", flush=True)
        while True:
            _, peer = s.recvfrom(65535)
            s.sendto(f"{args.name} {peer[0]} {peer[1]}".encode(), peer)


if __name__ == "__main__":
    main()
