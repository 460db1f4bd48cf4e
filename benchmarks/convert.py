"""Time every VideoFrame conversion at 1920x1080 beside livekit and a plain copy.

Thin wrapper around ``kitewire bench convert`` (the code lives in kitewire/bench/);
pass the same options, e.g. ``python benchmarks/convert.py --quick``.
"""

from __future__ import annotations

import argparse
import sys

from kitewire import bench


def main() -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/convert.py", description=__doc__)
    bench.add_arguments(parser)
    args = parser.parse_args(["convert", *sys.argv[1:]])
    return bench.run(args)


if __name__ == "__main__":
    sys.exit(main())
