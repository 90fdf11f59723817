"""One MLP training step (forward, loss, backward, update), against the floor and the peers.

Two networks:
  A  784-100-10, sigmoid, the lecture's logistic cost (sigmoid outputs, one-hot targets) + L2,
     plain SGD;
  B  784-256-128-10, ReLU, dropout 0.2, softmax cross-entropy, Adam.
For each batch size and dtype it times, in the same run: autograd-lite (the `nn` package);
a hand-written NumPy step (the lecture's equations, in `numpy_reference.py`); the bare
matrix products of the step (the BLAS floor); for net A, autograd-lite's kernels called by
hand on preallocated buffers with the L2 term and the update fused (no framework: what the
step costs with all graph and dispatch overhead removed), and autograd-lite's primitives and
VJP rules called in straight-line code (what the step costs without recording and walking a
graph); and, when installed, PyTorch eager, JAX with
jit and HIPS autograd on the same data and initial weights. Before timing, every
implementation's loss (dropout off) is checked against the NumPy reference.

    python benchmarks/mlp_training.py [--batches 32,100,256] [--dtypes float32,float64] [--nets A,B]
                                      [--threads 1] [--repeats 7] [--json PATH] [--plot PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Callable, Dict, List, Optional


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
from timing import measure  # noqa: E402

Step = Callable[[], float]


# ---------------------------------------------------------------- autograd-lite
def ours(net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> Step:
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
    targets = np.eye(sizes[-1], dtype=dtype)[y]

    def step() -> float:
        opt.zero_grad()
        z = model(X)
        if net["loss"] == "bce":
            loss = nn.binary_cross_entropy_with_logits(z, targets)
        else:
            loss = nn.sparse_categorical_cross_entropy(z, y)
        if lam:
            loss = loss + nn.l2_penalty(model, lam)
        loss.backward()
        opt.step()
        return float(loss.data)
    return step


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
    "autograd-lite": ours,
    "numpy (hand-written)": lambda net, W, X, y, p: NumpyStep(net, W, X, y, p),
    "kernels by hand (A)": net_a_only(FusedKernelStep),      # our kernels by hand, no framework
    "prims without graph (A)": net_a_only(StraightLinePrimitivesStep),  # our rules, no graph
    "pytorch eager": torch_step,
    "jax jit": jax_step,
    "HIPS autograd": hips_step,
}


PEERS = ("pytorch eager", "jax jit", "HIPS autograd")


def check_losses(net: dict, W: list, X: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    """Each implementation's first loss with dropout off, against the NumPy reference."""
    reference = NumpyStep(net, [(w.copy(), b.copy()) for w, b in W], X, y, 0.0)()
    rtol = 1e-4 if X.dtype == np.float32 else 1e-9
    out = {}
    for name, make in IMPLEMENTATIONS.items():
        step = make(net, [(w.copy(), b.copy()) for w, b in W], X, y, 0.0)
        if step is None:
            continue
        loss = step()
        if not np.isclose(loss, reference, rtol=rtol, atol=0):
            raise SystemExit(f"mlp_training: {name} computes loss {loss!r} but the NumPy reference "
                             f"gives {reference!r} on net {net['name']}, {X.dtype}; not timing it")
        out[name] = loss
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="A,B", help="which networks (A, B)")
    parser.add_argument("--batches", default="32,100,256", help="batch sizes, comma-separated")
    parser.add_argument("--dtypes", default="float32,float64", help="float32 and/or float64")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per timed run")
    parser.add_argument("--only", default=None, help="comma-separated implementations to run")
    parser.add_argument("--threads", default="1",
                        help="BLAS / PyTorch threads for every implementation (default 1: stable "
                             "ratios on a shared machine)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a bar chart (needs matplotlib)")
    args = parser.parse_args(argv)
    only = None if args.only is None else set(args.only.split(","))
    rows = []
    missing = set()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, python {platform.python_version()}, {THREADS} BLAS thread(s), "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, "
          f"kernels={ag.get_kernels()}")
    header = (f"{'net':<3} {'dtype':<8} {'batch':>5}  {'implementation':<23} {'ms/step':>8} "
              f"{'x floor':>8} {'x ours':>8} {'faults':>7}")
    print(header)
    for net_name in args.nets.split(","):
        net = NETS[net_name]
        for dtype_name in args.dtypes.split(","):
            dtype = np.dtype(dtype_name)
            for batch in (int(b) for b in args.batches.split(",")):
                X, y = make_batch(net, batch, dtype)
                W = initial_weights(net, dtype)
                check_losses(net, W, X, y)
                floor, _ = measure(blas_floor(net, W, X), args.repeats, args.min_time)
                print(f"{net_name:<3} {dtype_name:<8} {batch:>5}  {'BLAS floor (GEMMs only)':<23} "
                      f"{floor * 1e3:8.3f} {1.0:8.2f} {'':>8} {'':>7}")
                ours_time = None
                for name, make in IMPLEMENTATIONS.items():
                    if only is not None and name not in only and name != "autograd-lite":
                        continue
                    step = make(net, [(w.copy(), b.copy()) for w, b in W], X, y, net["dropout"])
                    if step is None:
                        if name in PEERS:
                            missing.add(name)
                        continue
                    seconds, faults = measure(step, args.repeats, args.min_time)
                    if ours_time is None:
                        ours_time = seconds
                    rows.append(dict(net=net_name, dtype=dtype_name, batch=batch, implementation=name,
                                     ms_per_step=seconds * 1e3, floor_ms=floor * 1e3,
                                     x_floor=seconds / floor, x_ours=seconds / ours_time,
                                     minor_faults_per_step=faults))
                    print(f"{net_name:<3} {dtype_name:<8} {batch:>5}  {name:<23} {seconds * 1e3:8.3f} "
                          f"{seconds / floor:8.2f} {seconds / ours_time:8.2f} {faults:7.1f}")
    for name in sorted(missing):
        print(f"note: {name} is not installed; skipped (pip install -e '.[peers]')")
    print("x floor: time / the GEMMs of the step alone; x ours: time / autograd-lite's time "
          "(above 1 means autograd-lite is faster); faults: minor page faults per step")
    if args.json:
        write_json(args.json, {"machine": platform.platform(), "rows": rows})
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
