"""``pylvs``: utilities (demo; realserver and genhash arrive with their issues)."""

from __future__ import annotations

import sys

from pylvs.cli import demo

COMMANDS = {"demo": demo.main}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: pylvs {demo} [options]\n\n  demo   the engine on simulated traffic")
        return 0 if args else 2
    cmd = COMMANDS.get(args[0])
    if cmd is None:
        print(f"pylvs: unknown command {args[0]!r} (try: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    return cmd(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
