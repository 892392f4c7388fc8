"""`python -m hw_gan.cli ARGS` is `hwgan ARGS`."""

import sys

from hw_gan.cli import main

if __name__ == "__main__":
    sys.exit(main())
