"""RSS of a subscriber that falls behind at 1280x720@30 (capacity=1 vs 0), beside the official SDK.

    python benchmarks/memory.py [--quick] [--memory-seconds 60] [--memory-rows k1,k0,o1]
                                [--output BENCHMARKS.md | --no-write]

The same as ``kitewire bench memory``; see :mod:`kitewire.bench.memory` for the method.
"""

import sys

from kitewire.bench.memory import main

if __name__ == "__main__":
    sys.exit(main())
