"""`python -m lightdl`: the `lightdl` command, where the console script is not on PATH."""

import sys

from lightdl.cli import main

sys.exit(main())
