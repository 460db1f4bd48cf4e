"""The ``kitewire`` command line.

Each command lives in its own module, which exposes ``add_arguments(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs, so
``kitewire --help`` stays fast and one command's dependencies never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> (module path, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("kitewire.demo", "publish a test pattern through an embedded server and receive it"),
    "serve": ("kitewire.server.cli", "run a LiveKit-compatible SFU"),
    "token": ("kitewire.server.token_cli", "print a join token"),
    "bench": ("kitewire.bench", "run the benchmarks and print their tables"),
    "load-test": ("kitewire.loadtest", "simulate publishers and subscribers against a server"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: kitewire <command> [options]", "", "commands:"]
    for name, (_, description) in COMMANDS.items():
        lines.append(f"  {name.ljust(width)}  {description}")
    lines.append("")
    lines.append("Run 'kitewire <command> --help' for a command's options.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from kitewire import __version__

        print(f"kitewire {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"kitewire: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_path, description = COMMANDS[name]
    module = importlib.import_module(module_path)
    parser = argparse.ArgumentParser(prog=f"kitewire {name}", description=description)
    module.add_arguments(parser)
    parsed = parser.parse_args(args[1:])
    try:
        return int(module.run(parsed) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
