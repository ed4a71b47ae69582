"""``python -m ctloop`` runs the command line."""

import sys

from ctloop.cli.main import main

sys.exit(main())
