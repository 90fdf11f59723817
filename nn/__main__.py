"""`python -m nn train | evaluate | predict`: see nn/cli.py."""
import sys

from .cli import main

sys.exit(main())
