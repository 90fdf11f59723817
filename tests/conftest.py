"""Shared test settings: hypothesis profiles ("ci" by default, "slow" with --slow)."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("slow", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="run many more hypothesis examples (the 'slow' profile)")


def pytest_configure(config):
    if config.getoption("--slow"):
        settings.load_profile("slow")
