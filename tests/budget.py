"""Run a snippet in a child Python whose memory is capped, for tests where a blow-up is the failure.

The child imports what it needs first, then caps its own address space (RLIMIT_AS) at what it
uses after the imports plus `budget_mb`, so the cap does not depend on how much NumPy, Numba and
OpenBLAS reserve at start-up on this machine. A body that tries to allocate more than the budget
gets a MemoryError (exit status 3 by our convention) instead of taking the machine down.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

MEMORY_ERROR_EXIT = 3

_PRELUDE = """
import resource, sys
def _address_space():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")
_cap = _address_space() + {budget} * 2**20
resource.setrlimit(resource.RLIMIT_AS, (_cap, _cap))
try:
{body}
except MemoryError:
    print("MemoryError: the memory budget was exceeded", file=sys.stderr)
    sys.exit({code})
"""


def run_with_memory_budget(body: str, budget_mb: int = 300, setup: str = "",
                           timeout: float = 120, cwd: str = None) -> subprocess.CompletedProcess:
    """Run `setup` (imports), then cap memory at current + budget_mb and run `body`.

    Returns the CompletedProcess (text stdout/stderr). Exit status MEMORY_ERROR_EXIT means the
    body ran out of its budget: the failure these tests exist to catch.
    """
    code = textwrap.dedent(setup) + _PRELUDE.format(
        budget=int(budget_mb), code=MEMORY_ERROR_EXIT,
        body=textwrap.indent(textwrap.dedent(body), "    "))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
