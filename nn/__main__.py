"""`python -m nn train | evaluate | predict | explain | sweep`: see nn/cli.py."""
import sys

_signalled: list = []   # SIGINTs received while the command line's modules load


def _on_ctrl_c(signum: int, frame: object) -> None:
    """Python's own SIGINT handler (raise KeyboardInterrupt), noting that the signal came."""
    _signalled.append(signum)
    raise KeyboardInterrupt


def _caused_by_ctrl_c(error: BaseException) -> bool:
    """True when `error` is a Ctrl-C, was raised while handling one, or came while one was being
    delivered: a Ctrl-C that lands inside a C extension's import (NumPy's) comes back as an
    ImportError whose context is the interrupt, or none at all when the extension imported a
    module itself ('PyCapsule_Import could not import module "datetime"')."""
    if _signalled:
        return True
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


try:
    import signal
    _previous = signal.getsignal(signal.SIGINT)
    if _previous is signal.default_int_handler:   # not when SIGINT is ignored (a background job)
        signal.signal(signal.SIGINT, _on_ctrl_c)
    from .cli import main
    signal.signal(signal.SIGINT, _previous)
except BaseException as error:
    if not _caused_by_ctrl_c(error):
        raise
    # Ctrl-C while the command line's modules load: one sentence, the usual exit status for SIGINT
    print("interrupted (Ctrl-C) while starting", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
