"""One MLP training step (forward, loss, backward, update), against the floor and the peers.

Two networks:
  A  784-100-10, sigmoid, the lecture's logistic cost (sigmoid outputs, one-hot targets) + L2,
     plain SGD;
  B  784-256-128-10, ReLU, dropout 0.2, softmax cross-entropy, Adam.
For each batch size and dtype it times, in the same run: autograd-lite through the `nn`
package and written by hand as the README's tour teaches (`x @ W + b`, `ag.sigmoid`, nn's loss,
`(W * W).sum()` for L2, nn's optimizer), each run eagerly and through `ag.compile` (traced once,
then replayed, the batch passed as an argument); a hand-written NumPy step (the lecture's equations, in `numpy_reference.py`); the bare
matrix products of the step (the BLAS floor); for net A, autograd-lite's kernels called by
hand on preallocated buffers with the L2 term and the update fused (no framework: what the
step costs with all graph and dispatch overhead removed), and autograd-lite's primitives and
VJP rules called in straight-line code (what the step costs without recording and walking a
graph); and, when installed, PyTorch eager, JAX with
jit and HIPS autograd on the same data and initial weights. Before timing, every
implementation's first three losses (dropout off) are checked against the NumPy reference's.
All the steps of a case, the floor included, are timed in turns (`timing.measure_in_turns`),
so a change in the machine's load falls on all of them alike.
Each row's time is compared with the floor, the eager step, the NumPy step, JAX jit and
PyTorch eager of the same case, and issue 14's targets are checked against this run's figures.
`--first-call` also times the compiled steps' first call (trace + code generation) in new
processes, with an empty and with a warm disk cache.

    python benchmarks/mlp_training.py [--batches 32,100,256] [--dtypes float32,float64] [--nets A,B]
                                      [--threads 1] [--repeats 7] [--first-call] [--json PATH]
                                      [--plot PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Callable, List, Optional


def _threads_from_argv(default: str = "1") -> str:
    """BLAS threads must be chosen before NumPy loads: read --threads N here."""
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return default


THREADS = _threads_from_argv()
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = THREADS

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import autograd_lite as ag  # noqa: E402
import nn  # noqa: E402
from numpy_reference import (NETS, FusedKernelStep, NumpyStep, StraightLinePrimitivesStep,  # noqa: E402
                             blas_floor, initial_weights, make_batch)
from report import pyplot, save_figure, write_json  # noqa: E402
from timing import measure_in_turns  # noqa: E402

Step = Callable[[], float]


# ---------------------------------------------------------------- autograd-lite
LossStep = Callable[[np.ndarray, np.ndarray], "ag.Tensor"]


def nn_step(net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> LossStep:
    """The step through `nn`: nn.MLP, its fused loss, nn.l2_penalty, nn.SGD / nn.Adam; called
    with a batch (inputs, targets), it returns the loss Tensor."""
    dtype = X.dtype
    sizes = net["sizes"]
    model = nn.MLP(sizes, activation=net["activation"], dropout=dropout, output_activation=None,
                   dtype=dtype, seed=0)
    names = [f"hidden.{i}" for i in range(len(sizes) - 2)] + ["output"]
    model.load_state_dict({**{f"{n}.weight": w for n, (w, _) in zip(names, W)},
                           **{f"{n}.bias": b for n, (_, b) in zip(names, W)}})
    if net["optimizer"] == "sgd":
        opt = nn.SGD(model.parameters(), lr=net["lr"])
    else:
        opt = nn.Adam(model.parameters(), lr=net["lr"])
    lam = net["l2"]

    def step(x: np.ndarray, targets: np.ndarray) -> ag.Tensor:
        opt.zero_grad()
        z = model(x)
        if net["loss"] == "bce":
            loss = nn.binary_cross_entropy_with_logits(z, targets)
        else:
            loss = nn.sparse_categorical_cross_entropy(z, targets)
        if lam:
            loss = loss + nn.l2_penalty(model, lam)
        loss.backward()
        opt.step()
        return loss
    return step


def handwritten_step(net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> LossStep:
    """The step as the README's tour teaches a user to write it: `x @ W + b`, `ag.sigmoid` /
    `ag.relu`, dropout from a seeded generator, nn's loss, `(W * W).sum()` for L2, nn's
    optimizer."""
    params = [ag.tensor(p, requires_grad=True) for wb in W for p in wb]
    opt = (nn.SGD(params, lr=net["lr"]) if net["optimizer"] == "sgd"
           else nn.Adam(params, lr=net["lr"]))
    act = ag.sigmoid if net["activation"] == "sigmoid" else ag.relu
    rng = np.random.default_rng(0)
    lam = net["l2"]

    def step(x: np.ndarray, targets: np.ndarray) -> ag.Tensor:
        opt.zero_grad()
        a = x
        for i in range(0, len(params) - 2, 2):
            a = act(a @ params[i] + params[i + 1])
            if dropout:
                a = ag.fused.dropout(a, dropout, rng)
        z = a @ params[-2] + params[-1]
        if net["loss"] == "bce":
            loss = nn.binary_cross_entropy_with_logits(z, targets)
        else:
            loss = nn.sparse_categorical_cross_entropy(z, targets)
        if lam:
            loss = loss + lam / 2 * sum((params[i] * params[i]).sum() for i in range(0, len(params), 2))
        loss.backward()
        opt.step()
        return loss
    return step


def targets_for(net: dict, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """What the loss takes: one-hot rows for the logistic cost, the labels for cross-entropy."""
    return np.eye(net["sizes"][-1], dtype=X.dtype)[y] if net["loss"] == "bce" else y


def eager(make_loss_step: Callable[..., LossStep]) -> Callable[..., Step]:
    """An implementation that runs `make_loss_step`'s step as it is, on the benchmark's batch."""
    def make(net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> Step:
        loss_step, targets = make_loss_step(net, W, X, y, dropout), targets_for(net, X, y)
        return lambda: float(loss_step(X, targets).data)
    return make


def compiled(make_loss_step: Callable[..., LossStep]) -> Callable[..., Step]:
    """The same step through `ag.compile`: traced at the first call (during the warm-up), then
    replayed; the batch is an argument, as in a training loop, not a constant."""
    def make(net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> Step:
        loss_step = ag.compile(make_loss_step(net, W, X, y, dropout))
        targets = targets_for(net, X, y)
        return lambda: float(loss_step(X, targets).data)
    return make


# ---------------------------------------------------------------- PyTorch eager
def torch_step(net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> Optional[Step]:
    try:
        import torch
    except ImportError:
        return None
    F = torch.nn.functional
    torch.set_num_threads(int(THREADS))
    params = []
    for w, b in W:
        params += [torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)]
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y.astype(np.int64))
    Yt = F.one_hot(yt, net["sizes"][-1]).to(Xt.dtype)
    act = torch.sigmoid if net["activation"] == "sigmoid" else torch.relu
    opt = (torch.optim.SGD(params, lr=net["lr"]) if net["optimizer"] == "sgd"
           else torch.optim.Adam(params, lr=net["lr"]))
    lam, n = net["l2"], X.shape[0]

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        a = Xt
        for i in range(0, len(params) - 2, 2):
            a = act(torch.addmm(params[i + 1], a, params[i]))
            if dropout:
                a = F.dropout(a, dropout, training=True)
        z = torch.addmm(params[-1], a, params[-2])
        if net["loss"] == "bce":
            loss = F.binary_cross_entropy_with_logits(z, Yt, reduction="sum") / n
        else:
            loss = F.cross_entropy(z, yt)
        if lam:
            loss = loss + lam / 2 * sum((params[i] ** 2).sum() for i in range(0, len(params), 2))
        loss.backward()
        opt.step()
        return loss.item()
    return step


# ---------------------------------------------------------------- JAX with jit
def jax_step(net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> Optional[Step]:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in W]
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    Yj = jax.nn.one_hot(yj, net["sizes"][-1], dtype=Xj.dtype)
    act = jax.nn.sigmoid if net["activation"] == "sigmoid" else jax.nn.relu
    lam, lr, n = net["l2"], net["lr"], X.shape[0]
    b1, b2, eps = 0.9, 0.999, 1e-8

    def loss_fn(params, key):
        a = Xj
        for w, b in params[:-1]:
            a = act(a @ w + b)
            if dropout:
                key, sub = jax.random.split(key)
                keep = jax.random.bernoulli(sub, 1 - dropout, a.shape)
                a = jnp.where(keep, a / (1 - dropout), 0)
        z = a @ params[-1][0] + params[-1][1]
        if net["loss"] == "bce":
            loss = jnp.sum(jax.nn.softplus(z) - Yj * z) / n
        else:
            loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), yj[:, None], axis=1))
        if lam:
            loss = loss + lam / 2 * sum(jnp.sum(w * w) for w, _ in params)
        return loss

    @jax.jit
    def sgd(params, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        return loss, jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    @jax.jit
    def adam(params, m, v, t, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        scale = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - scale * m / (jnp.sqrt(v) + eps * jnp.sqrt(1 - b2 ** t)), params, m, v)
        return loss, params, m, v

    state = {"params": params, "key": jax.random.PRNGKey(0), "t": 0,
             "m": jax.tree_util.tree_map(jnp.zeros_like, params),
             "v": jax.tree_util.tree_map(jnp.zeros_like, params)}

    def step() -> float:
        state["key"], key = jax.random.split(state["key"])
        if net["optimizer"] == "sgd":
            loss, state["params"] = sgd(state["params"], key)
        else:
            state["t"] += 1
            loss, state["params"], state["m"], state["v"] = adam(
                state["params"], state["m"], state["v"], state["t"], key)
        return float(jax.block_until_ready(loss))
    return step


# ---------------------------------------------------------------- HIPS autograd
def hips_step(net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> Optional[Step]:
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        return None
    params = [np.array(p) for wb in W for p in wb]
    Y = np.eye(net["sizes"][-1], dtype=X.dtype)[y]
    lam, lr, n = net["l2"], net["lr"], X.shape[0]
    rng = np.random.default_rng(0)
    act = ((lambda z: 0.5 * (anp.tanh(0.5 * z) + 1)) if net["activation"] == "sigmoid"
           else (lambda z: anp.maximum(z, 0)))
    adam_state = {"t": 0, "m": [np.zeros_like(p) for p in params], "v": [np.zeros_like(p) for p in params]}

    def loss_fn(ps):
        a = X
        for i in range(0, len(ps) - 2, 2):
            a = act(anp.dot(a, ps[i]) + ps[i + 1])
            if dropout:
                a = a * ((rng.random(a.shape) >= dropout) / (1 - dropout)).astype(X.dtype)
        z = anp.dot(a, ps[-2]) + ps[-1]
        if net["loss"] == "bce":
            loss = anp.sum(anp.logaddexp(0, z) - Y * z) / n
        else:
            m = anp.max(z, axis=1, keepdims=True)
            logp = z - m - anp.log(anp.sum(anp.exp(z - m), axis=1, keepdims=True))
            loss = -anp.sum(logp[np.arange(n), y]) / n
        if lam:
            loss = loss + lam / 2 * sum(anp.sum(ps[i] * ps[i]) for i in range(0, len(ps), 2))
        return loss

    value_and_grad = autograd.value_and_grad(loss_fn)

    def step() -> float:
        loss, grads = value_and_grad(params)
        if net["optimizer"] == "sgd":
            for p, g in zip(params, grads):
                p -= lr * g
        else:
            adam_state["t"] += 1
            t = adam_state["t"]
            for p, g, m, v in zip(params, grads, adam_state["m"], adam_state["v"]):
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        return float(loss)
    return step


def net_a_only(step_class) -> Callable[..., Optional[Step]]:
    """A maker for a yardstick step written for net A only (None for the other net)."""
    def make(net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> Optional[Step]:
        return step_class(net, W, X, y, dropout) if net["name"] == "A" else None
    return make


IMPLEMENTATIONS = {
    "autograd-lite": eager(nn_step),
    "autograd-lite compiled (nn)": compiled(nn_step),
    "autograd-lite (written by hand)": eager(handwritten_step),
    "autograd-lite compiled (written by hand)": compiled(handwritten_step),
    "numpy (hand-written)": lambda net, W, X, y, p: NumpyStep(net, W, X, y, p),
    "kernels by hand (A)": net_a_only(FusedKernelStep),      # our kernels by hand, no framework
    "prims without graph (A)": net_a_only(StraightLinePrimitivesStep),  # our rules, no graph
    "pytorch eager": torch_step,
    "jax jit": jax_step,
    "HIPS autograd": hips_step,
}


PEERS = ("pytorch eager", "jax jit", "HIPS autograd")
FLOOR = "BLAS floor (GEMMs only)"


CHECKED_STEPS = 3


def check_losses(net: dict, W: list, X: np.ndarray, y: np.ndarray, only: Optional[set] = None) -> None:
    """Each implementation's first CHECKED_STEPS losses with dropout off, against the NumPy
    reference's (a compiled step's replays are checked, not only its trace)."""
    step = NumpyStep(net, [(w.copy(), b.copy()) for w, b in W], X, y, 0.0)
    reference = [step() for _ in range(CHECKED_STEPS)]
    rtol = 1e-4 if X.dtype == np.float32 else 1e-9
    for name, make in IMPLEMENTATIONS.items():
        if only is not None and name not in only:
            continue
        step = make(net, [(w.copy(), b.copy()) for w, b in W], X, y, 0.0)
        if step is None:
            continue
        losses = [step() for _ in range(CHECKED_STEPS)]
        if not np.allclose(losses, reference, rtol=rtol, atol=0):
            raise SystemExit(f"mlp_training: {name} computes losses {losses!r} but the NumPy reference "
                             f"gives {reference!r} on net {net['name']}, {X.dtype}; not timing it")


# the columns comparing a row with another implementation measured on the same case; "x eager"
# compares a compiled step with the same step run eagerly
BASELINES = {"x eager": "autograd-lite", "x numpy": "numpy (hand-written)", "x jax": "jax jit",
             "x torch": "pytorch eager"}
EAGER_OF = {"autograd-lite compiled (written by hand)": "autograd-lite (written by hand)"}

# issue 14's figures: (net, implementation, column, at most), on float32 at batch 100 for net A
TARGETS = [
    ("A", "autograd-lite compiled (written by hand)", "x_floor", 1.25),
    ("A", "autograd-lite compiled (written by hand)", "x_numpy", 0.7),
    ("A", "autograd-lite compiled (written by hand)", "x_jax", 0.8),
    ("A", "autograd-lite compiled (written by hand)", "x_torch", 0.35),
    ("A", "autograd-lite compiled (written by hand)", "minor_faults_per_step", 1.0),
    ("A", "autograd-lite compiled (nn)", "x_floor", 1.2),
    ("B", "autograd-lite compiled (nn)", "x_floor", 1.2),
    ("B", "autograd-lite compiled (nn)", "x_jax", 1.0),
]


def target_lines(rows: List[dict]) -> List[str]:
    """Each of issue 14's targets against the rows measured in this run: met, missed or not
    measured (a case or a peer not run)."""
    lines = []
    for net, name, column, limit in TARGETS:
        cases = [r for r in rows if r["net"] == net and r["implementation"] == name
                 and (net == "B" or (r["dtype"] == "float32" and r["batch"] == 100))]
        if not cases:
            lines.append(f"  {net} {name}: {column} <= {limit}: not measured in this run")
            continue
        for r in cases:
            value = r.get(column)
            verdict = "not measured" if value is None else ("met" if value <= limit else "missed")
            shown = "-" if value is None else f"{value:.2f}"
            lines.append(f"  {net} {r['dtype']} batch {r['batch']} {name}: {column} = {shown} "
                         f"(at most {limit}): {verdict}")
    return lines


def _ratio(value: Optional[float]) -> str:
    return f"{value:8.2f}" if value is not None else f"{'-':>8}"


# ---------------------------------------------------------------- first call: trace + codegen
# the environment variable that points ag.compile's disk cache of generated kernels at a folder
COMPILE_CACHE_ENV = "AUTOGRAD_LITE_COMPILE_CACHE"
# each compiled step and the eager step run first in its process, so that the compiled step's
# first call is timed with the eager kernels already loaded: its trace, code generation and
# first replay only
FIRST_CALLS = {"autograd-lite compiled (nn)": "autograd-lite",
               "autograd-lite compiled (written by hand)": "autograd-lite (written by hand)"}


def first_call_child(net_name: str, dtype_name: str, batch: int, name: str) -> int:
    """In a fresh process: seconds of the eager step's first call (loading the kernels from
    Numba's cache), then of the compiled step's first four calls: the trace, the checking second
    trace, the first replay (which generates the fused kernels and compiles them or loads them
    from the disk cache) and a steady replay."""
    import json
    import time
    net = NETS[net_name]
    dtype = np.dtype(dtype_name)
    X, y = make_batch(net, batch, dtype)
    W = initial_weights(net, dtype)
    eager_step = IMPLEMENTATIONS[FIRST_CALLS[name]](net, [(w.copy(), b.copy()) for w, b in W], X, y,
                                                    net["dropout"])
    step = IMPLEMENTATIONS[name](net, W, X, y, net["dropout"])
    times = []
    for call in (eager_step, step, step, step, step):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"eager_first_s": times[0], "first_s": times[1], "second_s": times[2],
                      "third_s": times[3], "fourth_s": times[4]}))
    return 0


def first_calls(net_name: str, dtype_name: str, batch: int) -> List[dict]:
    """Each compiled step's first call in new processes: with an empty compile cache (first
    use), then with the cache the first process left (a later process)."""
    import json
    import subprocess
    import tempfile
    out = []
    for name in FIRST_CALLS:
        with tempfile.TemporaryDirectory(prefix="compile-cache-") as cache:
            env = dict(os.environ, **{COMPILE_CACHE_ENV: cache})
            for process in ("first use (empty cache)", "later process (disk cache)"):
                done = subprocess.run([sys.executable, os.path.abspath(__file__), "--first-call-child",
                                       net_name, dtype_name, str(batch), name, "--threads", THREADS],
                                      env=env, capture_output=True, text=True)
                if done.returncode:
                    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    print(f"note: the first-call process for {name} failed ({last}); not timed")
                    break
                times = json.loads(done.stdout.strip().splitlines()[-1])
                out.append(dict(net=net_name, dtype=dtype_name, batch=batch, implementation=name,
                                process=process, **times))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--first-call-child":
        return first_call_child(argv[1], argv[2], int(argv[3]), argv[4])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="A,B", help="which networks (A, B)")
    parser.add_argument("--batches", default="32,100,256", help="batch sizes, comma-separated")
    parser.add_argument("--dtypes", default="float32,float64", help="float32 and/or float64")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per timed run")
    parser.add_argument("--only", default=None,
                        help="comma-separated implementations to run (the baselines of the ratio "
                             "columns are run too)")
    parser.add_argument("--threads", default="1",
                        help="BLAS / PyTorch threads for every implementation (default 1: stable "
                             "ratios on a shared machine)")
    parser.add_argument("--first-call", action="store_true",
                        help="also time the first call of the compiled steps (trace + code "
                             "generation) in new processes, with an empty and a warm disk cache "
                             "(net A, float32, batch 100)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a bar chart (needs matplotlib)")
    args = parser.parse_args(argv)
    only = (None if args.only is None
            else set(args.only.split(",")) | set(BASELINES.values()) | set(EAGER_OF.values()))
    rows = []
    missing = set()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, python {platform.python_version()}, {THREADS} BLAS thread(s), "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', 'unset')}, "
          f"MALLOC_*={' '.join(k for k in os.environ if k.startswith('MALLOC_')) or 'unset'}, "
          f"kernels={ag.get_kernels()}, load average {os.getloadavg()[0]:.2f}")
    width = max(len(n) for n in IMPLEMENTATIONS)
    print(f"{'net':<3} {'dtype':<8} {'batch':>5}  {'implementation':<{width}} {'ms/step':>8} "
          f"{'x floor':>8} " + " ".join(f"{c:>8}" for c in BASELINES) + f" {'faults':>7}")
    for net_name in args.nets.split(","):
        net = NETS[net_name]
        for dtype_name in args.dtypes.split(","):
            dtype = np.dtype(dtype_name)
            for batch in (int(b) for b in args.batches.split(",")):
                X, y = make_batch(net, batch, dtype)
                W = initial_weights(net, dtype)
                check_losses(net, W, X, y, only)
                steps = {FLOOR: blas_floor(net, W, X)}
                for name, make in IMPLEMENTATIONS.items():
                    if only is not None and name not in only:
                        continue
                    step = make(net, [(w.copy(), b.copy()) for w, b in W], X, y, net["dropout"])
                    if step is None:
                        if name in PEERS:
                            missing.add(name)
                        continue
                    steps[name] = step
                case = measure_in_turns(steps, args.repeats, args.min_time)
                floor = case.pop(FLOOR)[0]
                del steps
                print(f"{net_name:<3} {dtype_name:<8} {batch:>5}  {FLOOR:<{width}} "
                      f"{floor * 1e3:8.3f} {1.0:8.2f}")
                for name, (seconds, faults) in case.items():
                    bases = dict(BASELINES, **{"x eager": EAGER_OF.get(name, BASELINES["x eager"])})
                    ratios = {column: (seconds / case[base][0] if base in case else None)
                              for column, base in bases.items()}
                    rows.append(dict(net=net_name, dtype=dtype_name, batch=batch, implementation=name,
                                     ms_per_step=seconds * 1e3, floor_ms=floor * 1e3,
                                     x_floor=seconds / floor, minor_faults_per_step=faults,
                                     **{column.replace(" ", "_"): r for column, r in ratios.items()}))
                    print(f"{net_name:<3} {dtype_name:<8} {batch:>5}  {name:<{width}} {seconds * 1e3:8.3f} "
                          f"{seconds / floor:8.2f} " + " ".join(_ratio(r) for r in ratios.values())
                          + f" {faults:7.1f}")
    for name in sorted(missing):
        print(f"note: {name} is not installed; skipped (pip install -e '.[peers]')")
    print("x floor: time / the GEMMs of the step alone; x eager, x numpy, x jax, x torch: time / that "
          "of the same autograd-lite step run eagerly (nn, or written by hand), the hand-written "
          "NumPy step, JAX jit, PyTorch eager on the same case (below 1: this row is faster); "
          "faults: minor page faults per step")
    print("issue 14's targets in this run:")
    for line in target_lines(rows):
        print(line)
    first = []
    if args.first_call:
        print("first calls in new processes (net A, float32, batch 100): seconds")
        for r in first_calls("A", "float32", 100):
            first.append(r)
            print(f"  {r['implementation']:<{width}} {r['process']:<28} eager first call "
                  f"{r['eager_first_s']:6.3f}   compiled calls 1-4 (trace, check trace, first replay, "
                  f"replay) {r['first_s']:6.3f} {r['second_s']:6.3f} {r['third_s']:6.3f} {r['fourth_s']:7.4f}")
    if args.json:
        write_json(args.json, {"machine": platform.platform(), "threads": THREADS,
                               "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
                               "rows": rows, "first_calls": first})
    if args.plot:
        plt = pyplot()
        if plt is not None:
            cases = sorted({(r["net"], r["dtype"], r["batch"]) for r in rows})
            names = list(dict.fromkeys(r["implementation"] for r in rows))
            fig, ax = plt.subplots(figsize=(max(6, len(cases) * 1.2), 4))
            width = 0.8 / len(names)
            for k, name in enumerate(names):
                xs, hs = [], []
                for i, case in enumerate(cases):
                    for r in rows:
                        if (r["net"], r["dtype"], r["batch"]) == case and r["implementation"] == name:
                            xs.append(i + k * width)
                            hs.append(r["x_floor"])
                ax.bar(xs, hs, width, label=name)
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))])
            ax.set_xticklabels([f"{n} {d[-2:]} b{b}" for n, d, b in cases], rotation=45)
            ax.set_ylabel("time per step / BLAS floor")
            ax.legend(fontsize=8)
            fig.tight_layout()
            save_figure(fig, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
