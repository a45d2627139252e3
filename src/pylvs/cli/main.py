"""``pylvs``: utilities (demo, realserver, genhash)."""

from __future__ import annotations

import sys

from pylvs.cli import demo, genhash, live_demo, realserver


def _demo(argv: list[str]) -> int:
    if "--simulate" in argv:
        return demo.main([a for a in argv if a != "--simulate"])
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: pylvs demo [--simulate [--seconds N] [--rate N] [--seed N]]\n\n"
            "  a director on 127.0.0.1:8080 (proxy data plane) with three demo real servers;\n"
            "  --simulate: the engine alone on simulated traffic, no sockets"
        )
        return 0
    if argv:
        print(f"pylvs demo: unknown argument {argv[0]!r}", file=sys.stderr)
        return 2
    return live_demo.main()


COMMANDS = {"demo": _demo, "realserver": realserver.main, "genhash": genhash.main}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: pylvs {demo,realserver,genhash} [options]\n\n"
            "  demo        a director on loopback with demo real servers (--simulate: engine)\n"
            "  realserver  start|stop|status --vip VIP --mode dr|tun: this host as a real server\n"
            "  genhash     -s SERVER -p PORT -u URL [-S]: the MD5 digest HTTP_GET/SSL_GET expect"
        )
        return 0 if args else 2
    cmd = COMMANDS.get(args[0])
    if cmd is None:
        print(f"pylvs: unknown command {args[0]!r} (try: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    return cmd(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
