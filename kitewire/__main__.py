import sys

from kitewire.cli import main

sys.exit(main())
