"""``python -m aigc_course ...`` runs the ``aigc-course`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
