"""Lab HTTP/1.1 real server, run as a script inside a namespace (standard library only).

Every request (any method, any path) is answered 200 with the body ``"NAME PEER_IP PEER_PORT\\n"``:
the peer this server saw, which is what NAT/DR/FULLNAT tests want to check.  Keep-alive is
supported and ``Connection: close`` from the client is honoured (and echoed).

    python3 httpd.py --port 80 --name rs1 [--bind 0.0.0.0]
"""

from __future__ import annotations

import argparse
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PeerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pylvs-lab-httpd"
    node_name = "lab"

    def answer(self, *, with_body: bool) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        peer_ip, peer_port = self.client_address[0], self.client_address[1]
        body = f"{self.node_name} {peer_ip} {peer_port}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self.answer(with_body=True)

    def do_POST(self) -> None:
        self.answer(with_body=True)

    def do_PUT(self) -> None:
        self.answer(with_body=True)

    def do_HEAD(self) -> None:
        self.answer(with_body=False)

    def log_message(self, format: str, *args: object) -> None:
        pass


class PeerServer(ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--name", default="lab")
    ap.add_argument("--bind", default="0.0.0.0")
    args = ap.parse_args()
    PeerHandler.node_name = args.name
    PeerServer.address_family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    with PeerServer((args.bind, args.port), PeerHandler) as server:
        print(f"listening on {args.bind} port {args.port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
