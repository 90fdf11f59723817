"""Forward against reverse mode: the cost of a full derivative as the input (or output) grows.

Family A, f: R^n -> R (a 2-layer tanh network's squared error as a function of its input):
reverse mode gets the whole gradient from one VJP, forward mode needs n JVPs.
Family B, g: R -> R^m (the mirror image: a scalar through tanh layers to m outputs):
forward mode gets the whole derivative from one JVP, reverse mode needs m VJPs.
Each size is timed as one evaluation, the full derivative by each mode, and each mode's ratio
to one evaluation; the many-pass mode stops at a time budget (and says so, with the total
estimated from its measured time per pass). The vmap columns time the many-pass mode's n passes
as one batched pass (`ag.jacobian(..., vectorize=True)`: `vmap` of the JVP or VJP over the
identity). Every derivative is checked against the other mode before it is timed. JAX and
PyTorch (torch.func) run the same derivatives when installed.

A second table, vmap against the loop: the full Jacobian of family A's vector map
r(x) = W2 tanh(W1 x + b1) + b2 - y (R^n -> R^m, m = n = --jacobian-n) by each mode looped and
vmapped, against one evaluation of r and one batched evaluation at a batch of n points (the
theoretical cost of n JVPs as one matrix-matrix pass); and the Hessian of family A's f at
n = --hessian-n, vmapped (forward over reverse) against the loop of Hessian-vector products.
Vmapped and looped results must agree to 1e-12 (float64) before they are timed.

    python benchmarks/forward_vs_reverse.py [--sizes 1,10,100,1000,10000] [--budget 20]
                                            [--jacobian-n 1000] [--hessian-n 100]
                                            [--json out.json] [--plot out.png]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

# One BLAS thread unless told otherwise: on a small shared machine a second BLAS thread that
# waits for a busy core makes a 0.03 ms matrix-vector product take milliseconds, at random.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import autograd_lite as ag  # noqa: E402
from report import pyplot, save_figure, write_json  # noqa: E402

HIDDEN = 1000  # width of the tanh layer next to the n-sized one (fixed work: a 1000 x 1000 matrix)
FIXED = 1000   # A: outputs before the squared error; B: width of the first tanh layer


# ---------------------------------------------------------------- the two families
class Problem:
    """One family at one size: the function on autograd-lite Tensors, its weights, its point.

    A maps R^n -> R^HIDDEN -> R^FIXED -> R; B is its mirror image R -> R^FIXED -> R^HIDDEN -> R^m.
    The fixed-size middle keeps the arithmetic, not the per-operation overhead, in charge at
    every n, so that ratios to one evaluation measure the modes and not the interpreter.
    """

    def __init__(self, family: str, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.family, self.n = family, n
        if family == "A":   # f(x) = 0.5 ||W2 tanh(W1 x + b1) + b2 - y||^2,  x in R^n
            self.W1 = rng.standard_normal((HIDDEN, n)) / math.sqrt(n)
            self.b1 = rng.standard_normal(HIDDEN) * 0.1
            self.W2 = rng.standard_normal((FIXED, HIDDEN)) / math.sqrt(HIDDEN)
            self.b2 = rng.standard_normal(FIXED) * 0.1
            self.y = rng.standard_normal(FIXED)
            self.point = rng.standard_normal(n)
        else:               # g(s) = W2 tanh(W1 tanh(w0 s + b0) + b1) + b2,  s in R, g(s) in R^m
            self.w0 = rng.standard_normal(FIXED)
            self.b0 = rng.standard_normal(FIXED) * 0.1
            self.W1 = rng.standard_normal((HIDDEN, FIXED)) / math.sqrt(FIXED)
            self.b1 = rng.standard_normal(HIDDEN) * 0.1
            self.W2 = rng.standard_normal((n, HIDDEN)) / math.sqrt(HIDDEN)
            self.b2 = rng.standard_normal(n) * 0.1
            self.point = np.array(0.3)

    def f(self, x: Any) -> Any:
        """The function, written once with autograd-lite operations."""
        if self.family == "A":
            h = ag.tanh(self.W1 @ x + self.b1)              # (hidden,)
            r = self.W2 @ h + self.b2 - self.y              # (fixed,)
            return 0.5 * (r * r).sum()
        u = ag.tanh(self.w0 * x + self.b0)                  # (fixed,)
        h = ag.tanh(self.W1 @ u + self.b1)                  # (hidden,)
        return self.W2 @ h + self.b2                        # (m,)

    def residual(self, x: Any) -> Any:
        """Family A's vector map before the squared error, r: R^n -> R^FIXED."""
        return self.W2 @ ag.tanh(self.W1 @ x + self.b1) + self.b2 - self.y

    def evaluate(self) -> np.ndarray:
        return self.f(ag.tensor(self.point)).data

    # the many-pass mode's n passes as one batched pass: vmap of the JVP (A) or VJP (B)
    def vmapped(self) -> np.ndarray:
        return ag.jacobian(self.f, mode="fwd" if self.family == "A" else "rev")(self.point)

    # the one-pass mode: reverse for A (one VJP), forward for B (one JVP)
    def one_pass(self) -> np.ndarray:
        if self.family == "A":
            return ag.grad(self.f)(self.point)
        return ag.jvp(self.f, (self.point,), (np.ones_like(self.point),))[1]

    # the many-pass mode, one pass at a time: forward for A (JVP with e_j), reverse for B
    # (VJP with e_i after one forward pass); `passes(indices)` returns those entries
    def many_pass(self) -> Callable[[Any], np.ndarray]:
        n = self.n
        if self.family == "A":
            def forward_passes(indices) -> np.ndarray:
                out = np.empty(len(indices))
                for k, j in enumerate(indices):
                    e = np.zeros(n)
                    e[j] = 1.0
                    out[k] = ag.jvp(self.f, (self.point,), (e,))[1]
                return out
            return forward_passes
        _, pullback = ag.vjp(self.f, self.point)

        def reverse_passes(indices) -> np.ndarray:
            out = np.empty(len(indices))
            for k, i in enumerate(indices):
                e = np.zeros(n)
                e[i] = 1.0
                out[k] = pullback(e)[0]
            return out
        return reverse_passes

    def many_pass_full(self) -> np.ndarray:
        """The whole derivative by the many-pass mode (the vjp is part of the cost for B)."""
        return self.many_pass()(range(self.n))


# ---------------------------------------------------------------- timing
def best_times(fns: List[Callable[[], Any]], repeats: int, min_batch: float = 0.05) -> List[float]:
    """Seconds per call of each fn: the best of `repeats` batches, each long enough to time
    reliably; the fns take turns, so that a change in the machine's load hits them alike."""
    numbers = []
    best = []
    for fn in fns:
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        numbers.append(max(1, int(min_batch / max(once, 1e-7))))
        best.append(once)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(numbers[i]):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / numbers[i])
    return best


def best_time(fn: Callable[[], Any], repeats: int, min_batch: float = 0.05) -> float:
    """Seconds per call of fn (see best_times)."""
    return best_times([fn], repeats, min_batch)[0]


def time_many_pass(problem: Problem, repeats: int, budget: float) -> Dict[str, Any]:
    """Time the n-pass mode in full when it fits the budget, else stop at the budget and estimate."""
    passes_for_estimate = min(problem.n, 5)
    start = time.perf_counter()
    sweep = problem.many_pass()
    setup = time.perf_counter() - start
    start = time.perf_counter()
    sweep(range(passes_for_estimate))
    per_pass = (time.perf_counter() - start) / passes_for_estimate
    estimate = setup + per_pass * problem.n
    if estimate * (1 + repeats) <= budget:
        return {"seconds": best_time(problem.many_pass_full, repeats), "complete": True,
                "passes": problem.n}
    if estimate <= budget:
        start = time.perf_counter()
        problem.many_pass_full()
        return {"seconds": time.perf_counter() - start, "complete": True, "passes": problem.n}
    # stop at the budget: run passes until it is spent, estimate the total from their rate
    start = time.perf_counter()
    sweep = problem.many_pass()
    setup = time.perf_counter() - start
    done, chunk = 0, 16
    while done < problem.n and (done == 0 or time.perf_counter() - start < budget):
        sweep(range(done, min(problem.n, done + chunk)))
        done = min(problem.n, done + chunk)
    spent = time.perf_counter() - start
    return {"seconds": setup + (spent - setup) / done * problem.n, "complete": done == problem.n,
            "passes": done, "spent": spent}


# ---------------------------------------------------------------- cross-checks
def check_modes(problem: Problem, full_limit: int = 1000, samples: int = 16) -> str:
    """Compare the two modes' derivatives: entry by entry when n <= full_limit, else on a sample."""
    one = np.asarray(problem.one_pass()).reshape(-1)
    n = problem.n
    if n <= full_limit:
        indices = np.arange(n)
    else:
        indices = np.unique(np.random.default_rng(1).integers(0, n, samples))
    many = problem.many_pass()(indices)
    if not np.allclose(one[indices], many, rtol=1e-9, atol=1e-12):
        worst = int(np.argmax(np.abs(one[indices] - many)))
        raise SystemExit(f"family {problem.family}, n = {n}: the two modes disagree at entry "
                         f"{indices[worst]}: {one[indices][worst]!r} vs {many[worst]!r}")
    return "all" if len(indices) == n else f"{len(indices)} sampled"


# ---------------------------------------------------------------- peers
def peer_runners(problem: Problem, peer_max: int) -> Dict[str, Dict[str, Callable[[], Any]]]:
    """{peer: {'eval'|'rev'|'fwd': thunk}} for the installed peers; the many-pass mode only up to
    peer_max (jacfwd / jacrev vectorize over the basis: an n x n identity, 800 MB at n = 10,000)."""
    many = "fwd" if problem.family == "A" else "rev"
    runners = {}
    for name, make in (("jax (jit)", _jax_thunks), ("torch.func", _torch_thunks)):
        try:
            thunks = make(problem)
        except ImportError:
            continue
        runners[name] = {mode: fn for mode, fn in thunks.items() if mode != many or problem.n <= peer_max}
    return runners


def _jax_thunks(problem: Problem) -> Dict[str, Callable[[], Any]]:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    if problem.family == "A":
        W1, b1, W2, b2, y = map(jnp.asarray, (problem.W1, problem.b1, problem.W2, problem.b2, problem.y))

        def f(x):
            r = W2 @ jnp.tanh(W1 @ x + b1) + b2 - y
            return 0.5 * jnp.sum(r * r)
    else:
        w0, b0, W1, b1, W2, b2 = map(jnp.asarray, (problem.w0, problem.b0, problem.W1, problem.b1,
                                                   problem.W2, problem.b2))

        def f(s):
            return W2 @ jnp.tanh(W1 @ jnp.tanh(w0 * s + b0) + b1) + b2
    x = jnp.asarray(problem.point)
    jitted = {"eval": jax.jit(f), "rev": jax.jit(jax.jacrev(f)), "fwd": jax.jit(jax.jacfwd(f))}
    return {mode: (lambda fn=fn: np.asarray(fn(x).block_until_ready())) for mode, fn in jitted.items()}


def _torch_thunks(problem: Problem) -> Dict[str, Callable[[], Any]]:
    import torch
    from torch.func import jacfwd, jacrev
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    as_torch = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)
    if problem.family == "A":
        W1, b1, W2, b2, y = map(as_torch, (problem.W1, problem.b1, problem.W2, problem.b2, problem.y))

        def f(x):
            r = W2 @ torch.tanh(W1 @ x + b1) + b2 - y
            return 0.5 * torch.sum(r * r)
    else:
        w0, b0, W1, b1, W2, b2 = map(as_torch, (problem.w0, problem.b0, problem.W1, problem.b1,
                                                problem.W2, problem.b2))

        def f(s):
            return W2 @ torch.tanh(W1 @ torch.tanh(w0 * s + b0) + b1) + b2
    x = as_torch(problem.point)

    def evaluate():
        with torch.no_grad():
            return f(x).numpy()
    return {"eval": evaluate,
            "rev": lambda: jacrev(f)(x).detach().numpy(),
            "fwd": lambda: jacfwd(f)(x).detach().numpy()}


def run_peers(problem: Problem, reference: np.ndarray, repeats: int,
              peer_max: int) -> Dict[str, Dict[str, float]]:
    """Time each installed peer after checking its derivatives against ours."""
    results: Dict[str, Dict[str, float]] = {}
    for peer, thunks in peer_runners(problem, peer_max).items():
        row: Dict[str, float] = {}
        for mode in ("rev", "fwd"):
            if mode in thunks:
                got = np.asarray(thunks[mode]()).reshape(-1)
                if not np.allclose(got, reference, rtol=1e-8, atol=1e-11):
                    raise SystemExit(f"{peer} {mode}: its derivative disagrees with autograd-lite's "
                                     f"(family {problem.family}, n = {problem.n})")
        modes = list(thunks)
        for mode, seconds in zip(modes, best_times([thunks[m] for m in modes], repeats)):
            row[mode] = seconds
        results[peer] = row
    return results


# ---------------------------------------------------------------- one family
def run_family(family: str, sizes: List[int], repeats: int, budget: float, peer_max: int,
               vmap_max: int, log: Callable[[str], None]) -> List[Dict[str, Any]]:
    rows = []
    for n in sizes:
        problem = Problem(family, n)
        checked = check_modes(problem)
        evaluation, one = best_times([problem.evaluate, problem.one_pass], repeats)
        many = time_many_pass(problem, repeats, budget)
        reverse, forward = (one, many) if family == "A" else (many, one)
        row = {"n": n, "eval_s": evaluation, "checked": checked,
               "reverse_s": reverse if family == "A" else many["seconds"],
               "forward_s": many["seconds"] if family == "A" else forward,
               "many_pass_complete": many["complete"], "many_pass_done": many["passes"]}
        row["reverse_ratio"] = row["reverse_s"] / evaluation
        row["forward_ratio"] = row["forward_s"] / evaluation
        reference = np.asarray(problem.one_pass()).reshape(-1)
        if n <= vmap_max:
            vmapped = np.asarray(problem.vmapped()).reshape(-1)
            if not np.allclose(vmapped, reference, rtol=1e-9, atol=1e-12):
                raise SystemExit(f"family {family}, n = {n}: the vmapped many-pass mode disagrees with "
                                 f"the one-pass mode by {np.max(np.abs(vmapped - reference)):.3g}")
            row["vmap_s"] = best_time(problem.vmapped, repeats)
            row["vmap_ratio"] = row["vmap_s"] / evaluation
        row["peers"] = run_peers(problem, reference, repeats, peer_max)
        for peer, times in row["peers"].items():
            for mode in ("rev", "fwd"):
                if mode in times:
                    times[mode + "_ratio"] = times[mode] / times["eval"]
        rows.append(row)
        log(f"  family {family}, n = {n}: done ({checked} entries cross-checked)")
    return rows


# ---------------------------------------------------------------- vmap against the loop
TARGETS = {"jacobian loop fwd / vmap fwd": (">=", 20.0), "jacobian loop rev / vmap rev": (">=", 20.0),
           "jacobian vmap / batched eval": ("<=", 3.0), "hessian loop / vmap": (">=", 10.0)}


def run_vmap_section(jacobian_n: int, hessian_n: int, repeats: int,
                     log: Callable[[str], None]) -> Dict[str, Any]:
    """The full Jacobian of family A's vector map at m = n = jacobian_n and the Hessian of family
    A's f at n = hessian_n, each looped and vmapped (checked equal to 1e-12 first)."""
    problem = Problem("A", jacobian_n)
    r, x = problem.residual, problem.point
    points = np.random.default_rng(2).standard_normal((jacobian_n, jacobian_n))
    jac = {"loop fwd": lambda: ag.jacobian(r, mode="fwd", vectorize=False)(x),
           "loop rev": lambda: ag.jacobian(r, mode="rev", vectorize=False)(x),
           "vmap fwd": lambda: ag.jacobian(r, mode="fwd")(x),
           "vmap rev": lambda: ag.jacobian(r, mode="rev")(x),
           "one eval": lambda: r(x),
           "batched eval": lambda: ag.vmap(r)(points)}
    reference = jac["loop fwd"]()
    diffs = {name: float(np.max(np.abs(jac[name]() - reference))) for name in ("loop rev", "vmap fwd", "vmap rev")}
    _require_equal(f"Jacobian at m = n = {jacobian_n}", diffs)
    log(f"  vmap: Jacobian at m = n = {jacobian_n} checked ({max(diffs.values()):.1e} max |diff|)")
    # the loops take seconds: time them once per repeat, alongside the rest
    names = list(jac)
    times = dict(zip(names, best_times([jac[k] for k in names], max(2, repeats // 2), min_batch=0.2)))
    problem_h = Problem("A", hessian_n)
    hess = {"loop": lambda: ag.hessian(problem_h.f, vectorize=False)(problem_h.point),
            "vmap": lambda: ag.hessian(problem_h.f)(problem_h.point),
            "one eval": problem_h.evaluate}
    h_diff = {"vmap": float(np.max(np.abs(hess["vmap"]() - hess["loop"]())))}
    _require_equal(f"Hessian at n = {hessian_n}", h_diff)
    log(f"  vmap: Hessian at n = {hessian_n} checked ({h_diff['vmap']:.1e} max |diff|)")
    h_names = list(hess)
    h_times = dict(zip(h_names, best_times([hess[k] for k in h_names], repeats)))
    ratios = {"jacobian loop fwd / vmap fwd": times["loop fwd"] / times["vmap fwd"],
              "jacobian loop rev / vmap rev": times["loop rev"] / times["vmap rev"],
              "jacobian vmap / batched eval": min(times["vmap fwd"], times["vmap rev"]) / times["batched eval"],
              "hessian loop / vmap": h_times["loop"] / h_times["vmap"]}
    return {"jacobian_n": jacobian_n, "hessian_n": hessian_n, "jacobian_s": times, "hessian_s": h_times,
            "max_abs_diff_to_loop": {"jacobian": diffs, "hessian": h_diff}, "ratios": ratios}


def _require_equal(what: str, diffs: Dict[str, float], tol: float = 1e-12) -> None:
    for name, diff in diffs.items():
        if not diff <= tol:
            raise SystemExit(f"{what}: {name} differs from the loop by {diff:.3g} (> {tol:g})")


def format_vmap_section(v: Dict[str, Any]) -> str:
    n, t, h = v["jacobian_n"], v["jacobian_s"], v["hessian_s"]
    lines = [f"vmap against the loop (float64; every vmapped result within "
             f"{max(list(v['max_abs_diff_to_loop']['jacobian'].values()) + list(v['max_abs_diff_to_loop']['hessian'].values())):.1e} "
             "of the loop's)",
             f"Full Jacobian of r(x) = W2 tanh(W1 x + b1) + b2 - y, R^{n} -> R^{FIXED}:",
             f"{'':>4}{'':<26} {'ms':>10} {'x one eval':>11}"]
    labels = {"loop fwd": f"loop of {n} JVPs", "loop rev": f"loop of {FIXED} VJPs",
              "vmap fwd": "vmap of the JVP (fwd)", "vmap rev": "vmap of the VJP (rev)",
              "one eval": "one evaluation of r", "batched eval": f"r at a batch of {n} points"}
    for key, label in labels.items():
        lines.append(f"{'':>4}{label:<26} {_ms(t[key]):>10} {t[key] / t['one eval']:>11.3g}")
    lines.append(f"Hessian of f(x) = 0.5 ||r(x)||^2 at n = {v['hessian_n']} (forward over reverse):")
    for key, label in (("loop", f"loop of {v['hessian_n']} HVPs"), ("vmap", "vmap of the HVP"),
                       ("one eval", "one evaluation of f")):
        lines.append(f"{'':>4}{label:<26} {_ms(h[key]):>10} {h[key] / h['one eval']:>11.3g}")
    for name, ratio in v["ratios"].items():
        goal = TARGETS.get(name)
        verdict = ""
        if goal:
            met = ratio >= goal[1] if goal[0] == ">=" else ratio <= goal[1]
            verdict = f"   (target {goal[0]} {goal[1]:g}: {'met' if met else 'MISSED'})"
        lines.append(f"  {name:<32} {ratio:>8.2f}{verdict}")
    return "\n".join(lines)


# ---------------------------------------------------------------- reporting
def crossover(rows: List[Dict[str, Any]], family: str) -> Tuple[Optional[float], str]:
    """Where reverse and forward cost the same: interpolated on the log-log curves, or, outside
    the sizes measured, extrapolated from the nearest one with the many-pass cost taken as
    proportional to n (and the one-pass cost as flat)."""
    size = "n" if family == "A" else "m"
    diffs = [(r["n"], math.log(r["reverse_s"]) - math.log(r["forward_s"])) for r in rows]
    for (n0, d0), (n1, d1) in zip(diffs, diffs[1:]):
        if d0 == 0:
            return float(n0), f"{size} = {n0}"
        if d0 * d1 < 0:
            t = d0 / (d0 - d1)
            n_star = math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
            return n_star, f"{size} ~ {n_star:.3g} (between {n0} and {n1})"
    if not diffs:
        return None, "no sizes measured"
    # log(reverse / forward) falls by log(n) in family A (forward grows), rises in family B
    sign = 1 if family == "A" else -1
    below = (diffs[0][1] < 0) if family == "A" else (diffs[0][1] > 0)
    n_ref, d_ref = diffs[0] if below else diffs[-1]
    n_star = n_ref * math.exp(sign * d_ref)
    winner = "reverse" if (family == "A") == below else "forward"
    where = "below the smallest" if below else "above the largest"
    return n_star, (f"{size} ~ {n_star:.2g}, extrapolated {where} size measured: {winner} mode is "
                    "cheaper at every size here")


def slope(rows: List[Dict[str, Any]], key: str) -> float:
    """Least-squares slope of log(cost / evaluation) against log(n)."""
    xs = np.log([r["n"] for r in rows])
    ys = np.log([r[key] for r in rows])
    if len(xs) < 2:
        return float("nan")
    return float(np.polyfit(xs, ys, 1)[0])


def size_name(family: str) -> str:
    return "n" if family == "A" else "m"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 10 else f"{seconds * 1e3:.0f}"


def format_table(family: str, rows: List[Dict[str, Any]], budget: float) -> str:
    title = {"A": f"Family A, f: R^n -> R, f(x) = 0.5 ||W2 tanh(W1 x + b1) + b2 - y||^2, "
                  f"W1: {HIDDEN} x n, W2: {FIXED} x {HIDDEN}; reverse = 1 VJP, forward = n JVPs",
             "B": f"Family B, g: R -> R^m, g(s) = W2 tanh(W1 tanh(w0 s + b0) + b1) + b2, "
                  f"W1: {HIDDEN} x {FIXED}, W2: m x {HIDDEN}; forward = 1 JVP, reverse = m VJPs"}[family]
    lines = [title,
             f"{'n' if family == 'A' else 'm':>7} {'eval ms':>10} {'reverse ms':>12} {'rev/eval':>9} "
             f"{'forward ms':>12} {'fwd/eval':>9} {'vmap ms':>10} {'vmap/eval':>9}  cheaper"]
    stopped = []
    for r in rows:
        mark_r = mark_f = " "
        if not r["many_pass_complete"]:
            stopped.append(r)
            if family == "A":
                mark_f = "*"
            else:
                mark_r = "*"
        cheaper = "reverse" if r["reverse_s"] < r["forward_s"] else "forward"
        vmap_cells = (f"{_ms(r['vmap_s']):>10} {r['vmap_ratio']:>9.3g}" if "vmap_s" in r
                      else f"{'skipped':>10} {'-':>9}")
        lines.append(f"{r['n']:>7} {_ms(r['eval_s']):>10} {_ms(r['reverse_s']):>11}{mark_r} "
                     f"{r['reverse_ratio']:>9.3g} {_ms(r['forward_s']):>11}{mark_f} "
                     f"{r['forward_ratio']:>9.3g} {vmap_cells}  {cheaper}")
    many = "forward" if family == "A" else "reverse"
    unit = "JVPs" if family == "A" else "VJPs"
    for r in stopped:
        lines.append(f"  * {'n' if family == 'A' else 'm'} = {r['n']}: {many} mode stopped at the "
                     f"{budget:g} s budget after "
                     f"{r['many_pass_done']} of {r['n']} {unit}; the total is estimated from "
                     "their measured rate")
    lines.append(f"  vmap: the {many} mode's {size_name(family)} {unit} as one batched pass "
                 "(ag.jacobian(..., vectorize=True)); skipped above --vmap-max (its basis is n x n)")
    _, where = crossover(rows, family)
    lines.append(f"  crossover (reverse = forward): {where}")
    size = "n" if family == "A" else "m"
    lines.append(f"  log-log slope of cost/eval against {size}: "
                 f"forward {slope(rows, 'forward_ratio'):.2f}, reverse {slope(rows, 'reverse_ratio'):.2f}")
    return "\n".join(lines)


def format_peers(family: str, rows: List[Dict[str, Any]]) -> str:
    peers = sorted({p for r in rows for p in r["peers"]})
    if not peers:
        return (f"Peers, family {family}: none installed (pip install '.[peers]' for jax / torch); "
                "skipped")
    lines = [f"Peers, family {family}: ms (cost / the peer's own evaluation)"]
    header = f"{'n' if family == 'A' else 'm':>7}"
    for p in peers:
        header += f" | {p + ' eval':>17} {p + ' rev':>20} {p + ' fwd':>20}"
    lines.append(header)
    for r in rows:
        line = f"{r['n']:>7}"
        for p in peers:
            times = r["peers"].get(p, {})
            line += f" | {_ms(times['eval']) if 'eval' in times else '-':>17}"
            for mode in ("rev", "fwd"):
                cell = (f"{_ms(times[mode])} ({times[mode + '_ratio']:.3g})" if mode in times
                        else "skipped")
                line += f" {cell:>20}"
        lines.append(line)
    lines.append("  skipped: the n-pass mode above --peer-max (jacfwd / jacrev vectorize over an "
                 "n x n basis)")
    return "\n".join(lines)


def write_plot(path: str, results: Dict[str, List[Dict[str, Any]]],
               vmap_section: Optional[Dict[str, Any]] = None) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    panels = len(results) + (vmap_section is not None)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    axes = list(axes[0])
    for ax, (family, rows) in zip(axes, results.items()):
        ns = [r["n"] for r in rows]
        for key, label in (("reverse_ratio", "reverse"), ("forward_ratio", "forward")):
            line, = ax.loglog(ns, [r[key] for r in rows], "o-", label=label)
            estimated = [r for r in rows if not r["many_pass_complete"] and
                         key == ("forward_ratio" if family == "A" else "reverse_ratio")]
            if estimated:  # hollow markers: stopped at the budget, total estimated
                ax.loglog([r["n"] for r in estimated], [r[key] for r in estimated], "o",
                          markerfacecolor="white", color=line.get_color(), label=label + " (estimated)")
        vmapped = [r for r in rows if "vmap_ratio" in r]
        if vmapped:
            ax.loglog([r["n"] for r in vmapped], [r["vmap_ratio"] for r in vmapped], "s--",
                      label=("forward" if family == "A" else "reverse") + ", vmapped")
        ax.set_xlabel("n (inputs)" if family == "A" else "m (outputs)")
        ax.set_ylabel("cost / one evaluation")
        ax.set_title("f: R^n -> R" if family == "A" else "g: R -> R^m")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    if vmap_section is not None:
        ax = axes[-1]
        t, h = vmap_section["jacobian_s"], vmap_section["hessian_s"]
        n, k = vmap_section["jacobian_n"], vmap_section["hessian_n"]
        bars = [(f"Jacobian {n}x{n}: loop fwd", t["loop fwd"]), ("loop rev", t["loop rev"]),
                ("vmap fwd", t["vmap fwd"]), ("vmap rev", t["vmap rev"]),
                (f"r at a batch of {n}", t["batched eval"]),
                (f"Hessian n={k}: loop", h["loop"]), ("Hessian: vmap", h["vmap"])]
        ax.barh([b[0] for b in bars], [b[1] * 1e3 for b in bars],
                color=["tab:gray", "tab:gray", "tab:blue", "tab:blue", "tab:green", "tab:gray", "tab:blue"])
        ax.set_xscale("log")
        ax.set_xlabel("milliseconds (log scale)")
        ax.set_title("vmap against the loop")
        ax.invert_yaxis()
    fig.tight_layout()
    save_figure(fig, path)
    return True


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000,10000",
                        help="comma-separated n (inputs of A, outputs of B); default %(default)s")
    parser.add_argument("--families", default="A,B", help="which families to run; default %(default)s")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds the n-pass mode may run at one size before it stops "
                             "(default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches per measurement (best kept)")
    parser.add_argument("--peer-max", type=int, default=2000,
                        help="largest n at which peers run their n-pass mode (their basis is n x n)")
    parser.add_argument("--vmap-max", type=int, default=2000,
                        help="largest n at which the vmap column runs (its basis is n x n)")
    parser.add_argument("--jacobian-n", type=int, default=1000,
                        help="n of the full Jacobian of r: R^n -> R^1000 timed looped and vmapped "
                             "(m = n at the default %(default)s; 0 skips the vmap table)")
    parser.add_argument("--hessian-n", type=int, default=100,
                        help="n of the Hessian timed looped and vmapped")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="also write a log-log PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    families = [f.strip().upper() for f in args.families.split(",") if f.strip()]
    if any(n < 1 for n in sizes) or not set(families) <= {"A", "B"}:
        parser.error("sizes must be positive integers and families A and/or B")
    if args.jacobian_n < 0 or args.hessian_n < 1:
        parser.error("--jacobian-n must be >= 0 (0 skips the vmap table) and --hessian-n >= 1")

    log = lambda message: print(message, file=sys.stderr, flush=True)
    results = {family: run_family(family, sizes, args.repeats, args.budget, args.peer_max,
                                  args.vmap_max, log)
               for family in families}
    vmap_section = (run_vmap_section(args.jacobian_n, args.hessian_n, args.repeats, log)
                    if args.jacobian_n else None)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}\n")
    for family, rows in results.items():
        print(format_table(family, rows, args.budget))
        print()
    if vmap_section is not None:
        print(format_vmap_section(vmap_section))
        print()
    for family, rows in results.items():
        print(format_peers(family, rows))
    if "A" in results:
        last = results["A"][-1]
        verdict = "within" if last["reverse_ratio"] <= 4 else "ABOVE"
        print(f"\nCheap gradient: at n = {last['n']} reverse mode's full gradient costs "
              f"{last['reverse_ratio']:.2f} evaluations of f ({verdict} the bound of 4).")
    if args.json:
        write_json(args.json, {"hidden": HIDDEN, "fixed": FIXED, "budget_s": args.budget,
                               "families": results,
                               "crossover": {f: crossover(rows, f)[0] for f, rows in results.items()},
                               "slopes": {f: {"forward": slope(rows, "forward_ratio"),
                                              "reverse": slope(rows, "reverse_ratio")}
                                          for f, rows in results.items()},
                               "vmap": vmap_section, "load": load})
        print(f"wrote {args.json}")
    if args.plot:
        if write_plot(args.plot, results, vmap_section):
            print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
