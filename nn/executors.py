"""Where independent trainings run: a local pool of worker processes (standard library only), or a
Dask distributed cluster. Sweeps, cross-validation folds and ensemble members are handed to one of
these; the code that hands them over does not know which.

Each local worker is a fresh Python (the "spawn" start method) started with one BLAS thread and one
Numba thread (the environment is set before the worker imports NumPy), so N workers on N cores do
not oversubscribe them; the workers share the on-disk Numba kernel cache, so a kernel compiled by
one is loaded by the others. Ctrl-C is left to the process that owns the pool: workers ignore it.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Dict, Optional

__all__ = ["ONE_THREAD", "Workers", "LocalWorkers", "DaskWorkers", "workers_for", "default_workers",
           "DISTRIBUTED_EXTRA"]

# the environment of a worker that should use one core: BLAS (OpenBLAS, MKL, OpenMP builds) and Numba
ONE_THREAD: Dict[str, str] = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                              "NUMBA_NUM_THREADS": "1"}
DISTRIBUTED_EXTRA = ("needs Dask's distributed scheduler, which is not installed: "
                     "pip install 'autograd-lite[distributed]'")


class Workers:
    """The interface a sweep uses: `submit(fn, arg) -> concurrent.futures.Future`, whether an error
    means the worker died (`worker_lost`) and whether the pool must then be rebuilt
    (`needs_restart`, `restart`), `stop()` on Ctrl-C and `close()` at the end."""

    count: int = 1
    description: str = ""

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        raise NotImplementedError

    def worker_lost(self, error: BaseException) -> bool:
        raise NotImplementedError

    def needs_restart(self) -> bool:
        return False

    def restart(self) -> None:
        """Start afresh after the workers were lost (only called when `needs_restart()`)."""

    def stop(self) -> None:
        """Stop at once: cancel what is queued and end what is running (Ctrl-C)."""
        self.close()

    def close(self) -> None:
        """Release the workers (a Dask client passed in by the user is left open)."""

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalWorkers(Workers):
    """`count` worker processes on this machine, each pinned to one BLAS and one Numba thread.

    A worker that dies (killed, out of memory) breaks a `ProcessPoolExecutor` as a whole: then the
    pool is rebuilt and the trials that were running on the other workers are resubmitted as well.

    Example:
        >>> with LocalWorkers(2) as workers:
        ...     workers.submit(pow, 2, 10).result()
        1024
    """

    def __init__(self, count: Optional[int] = None) -> None:
        count = default_workers() if count is None else count
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"sweep: workers must be a whole number >= 1, got {count!r}")
        self.count = count
        self.description = f"{count} local worker process{'es' if count > 1 else ''}"
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_ignore_ctrl_c)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        # the spawn start method starts workers inside submit: they inherit this environment
        with _ENVIRONMENT_LOCK:
            saved = {name: os.environ.get(name) for name in ONE_THREAD}
            os.environ.update(ONE_THREAD)
            try:
                return self._pool.submit(fn, *args)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    def worker_lost(self, error: BaseException) -> bool:
        return isinstance(error, BrokenProcessPool)

    def needs_restart(self) -> bool:
        return True

    def restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def stop(self) -> None:
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:        # a running training would otherwise finish first
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskWorkers(Workers):
    """Trials on a Dask distributed cluster: a `Client` you made, or the scheduler at `address`
    ("tcp://host:8786"), or, with neither, a local cluster of `count` one-thread worker processes.

    Dask itself reruns a task whose worker died on another worker; `distributed.KilledWorker`
    (the task killed several workers) counts as lost and is resubmitted by the sweep.
    """

    def __init__(self, client: Any = None, address: Optional[str] = None, count: Optional[int] = None) -> None:
        try:
            import distributed
        except ImportError:
            raise ImportError(f"sweep on a Dask cluster {DISTRIBUTED_EXTRA}") from None
        self._distributed = distributed
        self._own_client = client is None
        self._cluster = None
        self.client = client
        # the Dask futures not yet finished: Ctrl-C cancels them; a finished one is let go, so that
        # the cluster does not keep its result in memory until the end
        self._running: set = set()
        try:
            if client is None and address is None:
                import dask
                count = default_workers() if count is None else count
                # Dask's nanny already sets the BLAS variables to 1 before a worker starts; add Numba's
                with dask.config.set({"distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": 1}):
                    self._cluster = distributed.LocalCluster(n_workers=count, threads_per_worker=1,
                                                             processes=True, dashboard_address=None)
                self.client = distributed.Client(self._cluster)
            elif client is None:
                try:
                    self.client = distributed.Client(address, timeout="20s")
                except (OSError, TimeoutError) as error:
                    raise ValueError(f"sweep: cannot reach the Dask scheduler at {address!r} ({error}); start "
                                     "one with 'dask scheduler' and workers with 'dask worker ADDRESS'") from None
            self.count = max(len(self.client.scheduler_info().get("workers", {})), 1)
        except BaseException:        # Ctrl-C or an error while starting: no cluster of ours outlives it
            self.close()
            raise
        where = ("a local Dask cluster" if self._cluster is not None
                 else f"the Dask cluster at {self.client.scheduler.address}")
        self.description = f"{where} ({self.count} worker{'s' if self.count > 1 else ''})"

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        # pure=False: two submissions of the same trial are two runs (a retry must really run again)
        future = self.client.submit(fn, *args, pure=False)
        self._running.add(future)
        done: cf.Future = cf.Future()

        def copy(finished: Any) -> None:
            self._running.discard(finished)
            if done.done():
                return
            try:
                done.set_result(finished.result())
            except BaseException as error:   # the task's error, KilledWorker, or a cancellation
                done.set_exception(error)

        future.add_done_callback(copy)
        return done

    def worker_lost(self, error: BaseException) -> bool:
        return isinstance(error, self._distributed.KilledWorker)

    def stop(self) -> None:
        self.client.cancel(list(self._running))
        self.close()

    def close(self) -> None:
        if self._own_client:
            if self.client is not None:
                self.client.close()
            if self._cluster is not None:
                self._cluster.close()


def workers_for(workers: Optional[int] = None, client: Any = None, scheduler: Optional[str] = None) -> Workers:
    """The Workers a sweep runs on: a Dask `client` or `scheduler` address if given, else a local
    pool of `workers` processes (default: the number of cores this process may use)."""
    if client is not None or scheduler is not None:
        return DaskWorkers(client=client, address=scheduler)
    return LocalWorkers(workers)


def default_workers() -> int:
    """The number of cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:         # not on Linux
        return max(os.cpu_count() or 1, 1)


_ENVIRONMENT_LOCK = threading.Lock()


def _ignore_ctrl_c() -> None:
    """Workers ignore SIGINT: a Ctrl-C at the terminal reaches the whole process group, and the
    sweep that owns the pool decides what stops (fit's own Ctrl-C handling then stays off)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
