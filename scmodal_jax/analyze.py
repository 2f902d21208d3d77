"""`python -m scmodal_jax.analyze SUBCOMMAND RUN_DIR ...`: run analyses (see :mod:`scmodal_jax.cli.analyze`)."""

import sys

from .cli.analyze import main

if __name__ == "__main__":
    sys.exit(main())
