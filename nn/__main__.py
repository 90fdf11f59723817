"""`python -m nn train | evaluate | predict | explain | sweep`: see nn/cli.py."""
import sys


def _caused_by_ctrl_c(error: BaseException) -> bool:
    """True when `error` is a Ctrl-C, or was raised while handling one: a Ctrl-C that lands inside
    a C extension's import (NumPy's) comes back as an ImportError whose context is the interrupt."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


try:
    from .cli import main
except BaseException as error:
    if not _caused_by_ctrl_c(error):
        raise
    # Ctrl-C while the command line's modules load: one sentence, the usual exit status for SIGINT
    print("interrupted (Ctrl-C) while starting", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
