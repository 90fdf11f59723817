"""`python -m nn train | evaluate | predict | explain`: see nn/cli.py."""
import sys

try:
    from .cli import main
except KeyboardInterrupt:
    # Ctrl-C while the command line's modules load: one sentence, the usual exit status for SIGINT
    print("interrupted (Ctrl-C) while starting", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
