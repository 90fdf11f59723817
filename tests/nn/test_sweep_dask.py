"""Sweeps on a Dask distributed cluster (a local one, of two worker processes): killing a worker
mid-sweep costs only its trial, and every configuration is scored exactly once."""
import json
import os
import signal
import threading
import time

import pytest

import nn
import nn.sweep as sw
from nn.executors import workers_for

distributed = pytest.importorskip("distributed", reason="needs the distributed extra: "
                                  "pip install 'autograd-lite[distributed]'")


def test_killing_a_dask_worker_mid_sweep_costs_only_its_trial(tmp_path):
    results = tmp_path / "r.jsonl"
    base = {"hidden": [8], "epochs": 3, "batch_size": 32}
    configs = sw.grid(lr=[0.5, 1, 2, 4])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with workers_for(client=client) as workers:          # a client passed in is left open
            assert workers.submit(pow, 2, 10).result(timeout=30) == 1024
        outcome = {}

        def run():
            try:
                outcome["result"] = nn.sweep(configs, cv=2, base=base, scheduler=cluster.scheduler_address,
                                             results=str(results), verbose=False)
            except BaseException as error:      # handed to the test thread
                outcome["error"] = error

        sweeping = threading.Thread(target=run)
        sweeping.start()
        busy, deadline = {}, time.monotonic() + 60
        while not busy and time.monotonic() < deadline:
            time.sleep(0.05)
            # wait for a finished trial, so that workers are warm and the next ones are mid-training
            if results.exists() and results.read_text().count("\n") >= 1:
                busy = {address: keys for address, keys in client.processing().items() if keys}
        assert busy, "no worker was running a trial"
        victim = next(iter(busy))
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        sweeping.join(timeout=180)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert [s.trials for s in result.scores] == [2] * 4
    keys = [json.loads(line)["key"] for line in results.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 8                  # every trial on record exactly once
    assert len({json.dumps(s.config, sort_keys=True) for s in result.scores}) == 4
