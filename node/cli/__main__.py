"""`python -m node.cli ...`: the same as the `consortium` script."""
import sys

from node.cli.main import main

sys.exit(main())
