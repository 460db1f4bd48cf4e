"""``python -m benchmarks [e2e|memory|load|all] [--quick]``: the benchmark suite, as ``kitewire bench``.

Conversions, end to end, SFU capacity and memory, each table written into its
own section of BENCHMARKS.md (``--output`` to choose another file,
``--no-write`` to only print). See :mod:`kitewire.bench.suite`.
"""

import sys

from kitewire.bench.suite import main

if __name__ == "__main__":
    sys.exit(main())
