"""``python -m daninet_pipeline.rating``: the ``daninet-rating`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
