"""Beyond one process: how much faster a sweep runs on 2 workers than on 1 (local pool and a local
Dask cluster), what a data-parallel MNIST step costs on 2 MPI ranks, and an on-paper model of the
time per epoch on N machines.

    python benchmarks/scale.py                      # both parts
    python benchmarks/scale.py sweep --epochs 100   # a quicker sweep
    python benchmarks/scale.py data-parallel --data-dir ../shared/data/mnist --json scale.json

The sweep: 16 configurations (hidden 100/200 x lr 2/4 x l2 1.5e-4/1e-3 x batch 32/64, the rest at
train's digits defaults) x 3 stratified folds of the digits' training set, on 1 local worker, 2 local
workers and a local Dask cluster of 2 one-thread workers; the ratios are against 1 local worker in the
same run. The data-parallel step: 784-100-10 (sigmoid, logistic cost, batch 100) on MNIST, the median
step on 1 rank and on 2 ranks (`mpiexec -n 2`), split into compute and the Allreduce.
The model: T(N) = S c / N + (S / B) a(N, P), with c the measured compute seconds per sample, S the
training samples, B the global batch, and a the Allreduce of P parameters, a ring's
2 (N-1) latency + 2 (N-1)/N 4P / bandwidth.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
NETWORKS = {"784-100-10": [784, 100, 10], "784-256-128-10": [784, 256, 128, 10]}
# the network the on-paper model assumes between machines (the local figure is shared memory)
NETWORK_BANDWIDTH = 1.25e9      # bytes/s: 10 Gb Ethernet
NETWORK_LATENCY = 50e-6         # seconds per message hop


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", choices=("all", "sweep", "data-parallel", "_rank"), default="all",
                        help="what to measure (default: all)")
    parser.add_argument("--epochs", type=int, default=500, help="epochs per sweep trial (default: 500, train's)")
    parser.add_argument("--skip-dask", action="store_true", help="no local Dask cluster row")
    parser.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data" / "mnist"),
                        help="where MNIST's files are (default: ../shared/data/mnist)")
    parser.add_argument("--steps", type=int, default=100, help="timed data-parallel steps (default: 100)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.part == "_rank":
        return _rank(args)
    print(f"machine: {os.cpu_count()} cores; uptime: {_uptime()}")
    print("OpenBLAS settings: " + ", ".join(f"{k}={os.environ.get(k, '(unset)')}"
                                            for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")))
    figures: Dict[str, Any] = {"uptime_before": _uptime()}
    if args.part in ("all", "sweep"):
        figures["sweep"] = sweep_figures(args.epochs, not args.skip_dask)
    if args.part in ("all", "data-parallel"):
        figures["data_parallel"] = data_parallel_figures(args.data_dir, args.steps)
    figures["uptime_after"] = _uptime()
    print(f"uptime after: {figures['uptime_after']}")
    if args.json:
        sys.path.insert(0, str(HERE))
        from report import write_json
        write_json(args.json, figures)
    return 0


# ---------------------------------------------------------------- sweep: 1 vs 2 workers
def sweep_figures(epochs: int, dask: bool) -> Dict[str, Any]:
    import nn
    import nn.sweep as sw
    configs = sw.grid(hidden=[100, 200], lr=[2.0, 4.0], l2=[1.5e-4, 1e-3], batch_size=[32, 64])
    base = dict(sw._train_defaults("digits"), epochs=epochs)
    rows, results = [], {}
    runs = [("1 local worker", dict(workers=1)), ("2 local workers", dict(workers=2))]
    if dask:
        runs.append(("local Dask cluster, 2 workers", dict(client="local-dask")))
    print(f"\nsweep: {len(configs)} configurations x 3 folds on the digits, {epochs} epochs per trial")
    for label, where in runs:
        cluster = None
        if where.get("client") == "local-dask":
            from nn.executors import DaskWorkers
            cluster = DaskWorkers(count=2)       # started before the clock: a cluster is long-lived
            where = dict(client=cluster.client)
        try:
            started = time.perf_counter()
            result = nn.sweep(configs, cv=3, base=base, verbose=False, **where)
            seconds = time.perf_counter() - started
        finally:                                 # also on Ctrl-C or an error: no cluster left behind
            if cluster is not None:
                cluster.close()
        results[label] = result
        rows.append({"where": label, "seconds": seconds, "best": result.train_command(),
                     "best_mean": result.best.mean, "best_std": result.best.std,
                     "trial_seconds": sum(r["seconds"] for r in result.records)})
    one = rows[0]["seconds"]
    print(f"{'where':<32}{'seconds':>9}{'speed-up':>10}{'busy':>7}   target")
    targets = {"2 local workers": 1.8, "local Dask cluster, 2 workers": 1.7}
    for row in rows:
        row["speedup"] = one / row["seconds"]
        target = targets.get(row["where"])
        verdict = "" if target is None else f">= {target}x: {'met' if row['speedup'] >= target else 'MISSED'}"
        # the workers' training time over (wall time x workers): how fully the workers were used
        row["busy"] = row["trial_seconds"] / (row["seconds"] * (1 if row["where"].startswith("1 ") else 2))
        print(f"{row['where']:<32}{row['seconds']:>9.1f}{row['speedup']:>9.2f}x{100 * row['busy']:>6.0f}%   {verdict}")
    best = results["1 local worker"]
    print("\nbest configurations (1 local worker's run):\n" + best.table(limit=5))
    print(f"best as a train command: {best.train_command()}")
    same = len({r['best'] for r in rows}) == 1
    print(f"the runs agree on the best: {same}")
    return {"rows": rows, "table": best.table(), "best_command": best.train_command(), "runs_agree": same}


# ---------------------------------------------------------------- data-parallel step and model
def data_parallel_figures(data_dir: str, steps: int) -> Dict[str, Any]:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        print("\ndata-parallel: no mpiexec (pip install 'autograd-lite[mpi]'); skipped")
        return {}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    measured = {}
    for ranks in (1, 2):
        done = subprocess.run([str(mpiexec), "-n", str(ranks), sys.executable, __file__, "_rank",
                               "--data-dir", data_dir, "--steps", str(steps)],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"mpiexec -n {ranks} failed: {done.stderr[-1500:]}")
        measured[ranks] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\ndata-parallel MNIST step, 784-100-10, batch 100 (median of {steps} steps, one BLAS thread per rank)")
    print(f"{'ranks':>5}{'step ms':>9}{'compute ms':>12}{'allreduce ms':>14}{'comm share':>12}")
    for ranks, m in measured.items():
        print(f"{ranks:>5}{1e3 * m['step']:>9.2f}{1e3 * m['compute']:>12.2f}{1e3 * m['allreduce']:>14.3f}"
              f"{100 * m['allreduce'] / m['step']:>11.1f}%")
    print(f"speed-up of the step on 2 ranks: {measured[1]['step'] / measured[2]['step']:.2f}x; the Allreduce of "
          f"the 318 kB gradient alone, back to back: {1e3 * measured[2]['allreduce_alone']:.3f} ms (inside a "
          "step it also waits for the slower rank)")
    model = paper_model(measured)
    return {"measured": {str(k): v for k, v in measured.items()}, "model": model}


def paper_model(measured: Dict[int, Dict[str, Any]]) -> Dict[str, Any]:
    """T(N) per epoch for each network and global batch from its measured compute per sample and a
    ring Allreduce over the assumed network."""
    return {f"batch {batch}": _paper_table(measured, batch) for batch in (100, 1000)}


def _paper_table(measured: Dict[int, Dict[str, Any]], batch: int) -> Dict[str, Any]:
    samples = 60000
    local_bandwidth = measured[2]["allreduce_bandwidth"]
    out = {}
    print(f"\non-paper model: T(N) = S c / N + (S/B) [2 (N-1) l + 2 (N-1)/N 4P / bw], S={samples}, B={batch}, "
          f"l={1e6 * NETWORK_LATENCY:.0f} us, bw={NETWORK_BANDWIDTH / 1e9:.2f} GB/s (10 GbE; "
          f"2 local ranks measured {local_bandwidth / 1e9:.2f} GB/s through shared memory)")
    print(f"{'network':<16}{'params':>9}{'c us/sample':>13}{'T(1) s':>8}"
          + "".join(f"{'T(' + str(n) + ')':>8}" for n in (2, 4, 8, 16, 32)) + f"{'best N':>8}{'T min':>8}")
    for name, m in measured[1]["networks"].items():
        c, params = m["per_sample"], m["params"]

        def epoch(n: int) -> float:
            allreduce = 0.0 if n == 1 else 2 * (n - 1) * NETWORK_LATENCY + 2 * (n - 1) / n * 4 * params / NETWORK_BANDWIDTH
            return samples * c / n + samples / batch * allreduce

        times = {n: epoch(n) for n in range(1, batch + 1)}     # at most one sample per machine
        best = min(times, key=times.get)
        out[name] = {"params": params, "compute_per_sample": c, "epoch": {str(n): times[n] for n in (1, 2, 4, 8, 16, 32)},
                     "best_n": best, "best_epoch": times[best]}
        print(f"{name:<16}{params:>9}{1e6 * c:>13.2f}{times[1]:>8.2f}"
              + "".join(f"{times[n]:>8.2f}" for n in (2, 4, 8, 16, 32)) + f"{best:>8}{times[best]:>8.2f}")
    return out


def _rank(args: argparse.Namespace) -> int:
    """Under mpiexec: time data-parallel steps of 784-100-10 on MNIST; rank 0 prints one JSON line."""
    from mpi4py import MPI
    import nn
    from nn.data import batches, preprocess
    from nn.distributed import GradientAverager, _part, broadcast_parameters
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    ds = nn.datasets.load_dataset(args.data_dir if os.path.isdir(args.data_dir) else "mnist",
                                  download=False, verbose=False)
    x = preprocess(ds.x_train, ds.max_value, (-1.0, 1.0))
    y = ds.y_train
    loss = nn.train.get_loss("bce")
    result: Dict[str, Any] = {"ranks": size}
    networks = {}
    for name, sizes in NETWORKS.items():
        model = nn.MLP(sizes, activation="sigmoid", output_activation="sigmoid", seed=0, dtype=np.float32)
        optimizer = nn.SGD(model, lr=0.25)
        broadcast_parameters(model, comm)
        average = GradientAverager(model, comm)
        step_t, compute_t, reduce_t = [], [], []
        it = iter(batches(x, y, 100, seed=0))
        for i in range(args.steps + 10):
            xb, yb = next(it)
            comm.Barrier()
            t0 = time.perf_counter()
            lo, hi = _part(len(yb), rank, size)
            optimizer.zero_grad()
            (loss(model(xb[lo:hi]), yb[lo:hi]) + nn.l2_penalty(model, 1e-4)).backward()
            t1 = time.perf_counter()
            average(weight=(hi - lo) / len(yb))
            t2 = time.perf_counter()
            optimizer.step()
            t3 = time.perf_counter()
            if i >= 10:
                step_t.append(t3 - t0)
                compute_t.append((t1 - t0) + (t3 - t2))
                reduce_t.append(t2 - t1)
        networks[name] = {"params": model.num_parameters(), "step": statistics.median(step_t),
                          "compute": statistics.median(compute_t), "allreduce": statistics.median(reduce_t),
                          "per_sample": statistics.median(compute_t) / (100 / size)}
        if name == "784-100-10":
            result.update(step=networks[name]["step"], compute=networks[name]["compute"],
                          allreduce=networks[name]["allreduce"])
            if size > 1:
                # the Allreduce alone, back to back (inside a step it also waits for the slower rank)
                alone = []
                for _ in range(50):
                    comm.Barrier()
                    t0 = time.perf_counter()
                    comm.Allreduce(MPI.IN_PLACE, average.buffer, op=MPI.SUM)
                    alone.append(time.perf_counter() - t0)
                result["allreduce_alone"] = statistics.median(alone)
                # a ring Allreduce moves 2 (N-1)/N of the buffer in and out
                result["allreduce_bandwidth"] = 2 * (size - 1) / size * average.buffer.nbytes / max(
                    result["allreduce_alone"], 1e-9)
    result["networks"] = networks
    if rank == 0:
        print(json.dumps(result))
    return 0


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
