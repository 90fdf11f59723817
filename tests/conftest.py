"""Shared test settings: hypothesis profiles ("ci" by default, "slow" with --slow), and Ctrl-C as
an interactive Python has it."""
import os
import signal

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("slow", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A job started in the background by a non-interactive shell (CI runners do this) ignores SIGINT,
# and Python then leaves it ignored: the Ctrl-C tests would test nothing. Give this process, and
# through exec the processes it starts, the handler an interactive session has.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="run many more hypothesis examples (the 'slow' profile)")


def pytest_configure(config):
    if config.getoption("--slow"):
        settings.load_profile("slow")
