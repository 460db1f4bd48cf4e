"""End-to-end latency, fps, freezes and CPU at 1280x720@30, kitewire beside the official SDK.

    python benchmarks/e2e.py [--quick] [--seconds 30] [--warmup 3] [--codec VP8]
                             [--rows kk,oo,ko,ok] [--profile DIR]
                             [--output BENCHMARKS.md | --no-write]

The same as ``kitewire bench e2e``; see :mod:`kitewire.bench.e2e` for the method.
"""

import sys

from kitewire.bench.e2e import main

if __name__ == "__main__":
    sys.exit(main())
