"""``python -m cnnlab``; also how torchrun starts each process: ``torchrun --nproc_per_node=N -m cnnlab train ...``.

Under torchrun, rank 0 prints the results; the other ranks' standard output (the same
results) goes nowhere, and their errors still reach standard error.
"""

import os
import sys

from cnnlab.cli.main import main

if os.environ.get("RANK", "0") not in ("", "0") and "WORLD_SIZE" in os.environ:
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)

raise SystemExit(main())
