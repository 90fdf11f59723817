"""Data-parallel SGD over MPI (mpi4py): every rank holds the same model, takes its share of each
mini-batch, and the ranks average their gradients with one Allreduce of one flat buffer per step, so
that every rank applies the gradient of the whole mini-batch and the parameters stay identical.

A mini-batch gradient is an average over samples, so the average of the ranks' gradients, each
weighted by its share of the batch, is the gradient of the whole batch: N ranks take the same steps
as one process would, each doing 1/N of the work. `mpiexec -n 2 python -m nn train --data-parallel`
uses `fit_data_parallel`; `allreduce_gradients(model, comm)` is the piece for your own loop.
"""
from __future__ import annotations

import hashlib
import math
import sys
import time
from typing import IO, Any, Dict, Optional, Tuple, Union

import numpy as np

from .data import batches
from .losses import l2_penalty
from .module import Module
from .train import History, LossFn, _evaluate, _check_xy, get_loss

__all__ = ["MPI_EXTRA", "world", "GradientAverager", "allreduce_gradients", "broadcast_parameters",
           "check_parameters_identical", "ParameterDivergence", "fit_data_parallel"]

MPI_EXTRA = "needs mpi4py and an MPI runtime, which are not installed: pip install 'autograd-lite[mpi]'"
# steps between two checks that every rank still holds the same parameters
CHECK_EVERY = 200


def world() -> Any:
    """MPI's COMM_WORLD, or an ImportError that says which extra to install."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(f"--data-parallel {MPI_EXTRA}") from None
    return MPI.COMM_WORLD


class ParameterDivergence(RuntimeError):
    """The ranks' parameters are no longer identical (a rank applied a different update)."""


class GradientAverager:
    """Averages a model's gradients over the ranks of `comm` with ONE Allreduce per call, through a
    flat buffer allocated once (one slot per parameter scalar, in `parameters()` order).

    `weight` is this rank's share of the batch (its samples / the batch's samples): each rank's
    gradient is a mean over its own samples, so the weighted sum over ranks is the batch's mean.

    Example:
        >>> average = GradientAverager(model, comm)
        >>> cost.backward(); average(weight=len(my_part) / len(batch)); optimizer.step()
    """

    def __init__(self, model: Module, comm: Any) -> None:
        self.params = list(model.parameters())
        self.comm = comm
        dtypes = {p.data.dtype for p in self.params}
        if len(dtypes) != 1:
            raise ValueError(f"allreduce_gradients: the parameters have several dtypes {sorted(map(str, dtypes))}; "
                             "one flat buffer needs one dtype")
        self.buffer = np.zeros(sum(p.data.size for p in self.params), dtype=dtypes.pop())
        self.views = []
        offset = 0
        for p in self.params:
            self.views.append(self.buffer[offset:offset + p.data.size].reshape(p.data.shape))
            offset += p.data.size

    def __call__(self, weight: Optional[float] = None) -> None:
        """Replace each parameter's gradient by the weighted sum over the ranks (weight default
        1/size: a plain average). A parameter without a gradient counts as zero."""
        from mpi4py import MPI
        if weight is None:
            weight = 1.0 / self.comm.Get_size()
        for p, view in zip(self.params, self.views):
            if p.grad is None:
                view.fill(0)
            else:
                np.multiply(p.grad.data, weight, out=view)
        self.comm.Allreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)
        for p, view in zip(self.params, self.views):
            if p.grad is None:
                from autograd_lite import Tensor
                p.grad = Tensor(view.copy())
            else:
                np.copyto(p.grad.data, view)


def allreduce_gradients(model: Module, comm: Any, weight: Optional[float] = None) -> None:
    """Average `model`'s gradients over the ranks of `comm` in place (one Allreduce of a flat buffer,
    kept on the model between calls); `weight` = this rank's share of the batch when the shares differ.

    Example (each rank, after its own backward):
        >>> nn.distributed.allreduce_gradients(model, MPI.COMM_WORLD); optimizer.step()
    """
    averager = getattr(model, "_gradient_averager", None)
    if averager is None or averager.comm is not comm:
        averager = GradientAverager(model, comm)
        object.__setattr__(model, "_gradient_averager", averager)
    averager(weight)


def broadcast_parameters(model: Module, comm: Any, root: int = 0) -> None:
    """Give every rank `root`'s parameters (so that all start from the same weights)."""
    for p in model.parameters():
        comm.Bcast(p.data, root=root)


def check_parameters_identical(model: Module, comm: Any, step: int = 0) -> None:
    """A ParameterDivergence on every rank unless all ranks hold bit-identical parameters: each
    rank's digest (SHA-256 of the parameter bytes) is gathered; on a mismatch the largest difference
    from rank 0 is named."""
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(np.ascontiguousarray(p.data).tobytes())
    digests = comm.allgather(digest.hexdigest())
    if len(set(digests)) == 1:
        return
    worst: Tuple[float, str] = (0.0, "")
    for name, p in model.named_parameters():
        reference = p.data.copy()
        comm.Bcast(reference, root=0)
        gap = comm.allreduce(float(np.max(np.abs(p.data.astype(np.float64) - reference))) if p.data.size else 0.0,
                             op=_max_op())
        if gap > worst[0]:
            worst = (gap, name)
    ranks = [r for r, d in enumerate(digests) if d != digests[0]]
    raise ParameterDivergence(f"data-parallel training: after step {step} the parameters of rank(s) "
                              f"{', '.join(map(str, ranks))} differ from rank 0's (largest difference "
                              f"{worst[0]:.3g} in {worst[1]}); every rank must apply the same averaged gradient, "
                              "so something changed the weights on one rank only")


def fit_data_parallel(model: Module, loss: Union[str, LossFn], optimizer: Any,
                      train: Tuple[np.ndarray, np.ndarray], comm: Any,
                      validation: Optional[Tuple[np.ndarray, np.ndarray]] = None, epochs: int = 10,
                      batch_size: int = 32, l2: float = 0.0, schedule: Any = None, seed: Optional[int] = 0,
                      check_every: int = CHECK_EVERY, verbose: bool = True,
                      file: Optional[IO[str]] = None) -> History:
    """`nn.fit`'s mini-batch SGD with each batch split across the ranks of `comm`; returns the History
    (the same on every rank). Every rank must call it with the same data, model seed and options.

    Rank 0's initial parameters are broadcast first. Each step: every rank forms the same batch (the
    same seed), takes its contiguous part, computes its loss (+ the L2 penalty) and gradient, and one
    Allreduce adds the gradients weighted by the parts' sizes, giving the whole batch's gradient on
    every rank; every `check_every` steps and at the end the ranks check that their parameters are
    identical (ParameterDivergence otherwise). Each rank draws its own dropout masks. Only rank 0 prints.
    """
    loss_fn = get_loss(loss)
    x, y = _check_xy("fit_data_parallel", *train)
    rank, size = comm.Get_rank(), comm.Get_size()
    out = sys.stdout if file is None else file
    broadcast_parameters(model, comm)
    if size > 1:
        _own_random_streams(model, rank)
    averager = GradientAverager(model, comm)
    batch_iter = batches(x, y, batch_size, shuffle=True, seed=seed)
    history = History()
    steps = 0
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            started = time.perf_counter()
            compute = communicate = 0.0
            total_loss = np.zeros(2)          # (sum of losses x samples, correct) over this rank's parts
            for xb, yb in batch_iter:
                t0 = time.perf_counter()
                lo, hi = _part(len(yb), rank, size)
                optimizer.zero_grad()
                if hi > lo:
                    outputs = model(xb[lo:hi])
                    data_loss = loss_fn(outputs, yb[lo:hi])
                    cost = data_loss + l2_penalty(model, l2) if l2 else data_loss
                    cost.backward()
                    total_loss += (float(data_loss.data) * (hi - lo),
                                   int(np.sum(np.argmax(outputs.data, axis=-1) == yb[lo:hi])))
                t1 = time.perf_counter()
                averager(weight=(hi - lo) / len(yb))
                t2 = time.perf_counter()
                optimizer.step()
                compute += (t1 - t0) + (time.perf_counter() - t2)
                communicate += t2 - t1
                steps += 1
                if check_every and steps % check_every == 0:
                    check_parameters_identical(model, comm, steps)
            sums = comm.allreduce(total_loss)     # the whole epoch's loss and accuracy, not rank 0's part
            logs: Dict[str, float] = {"loss": sums[0] / len(y), "accuracy": sums[1] / len(y)}
            if validation is not None:
                result = _evaluate(model, validation[0], validation[1], loss_fn, 1024, None)
                logs.update(val_loss=result.loss, val_accuracy=result.accuracy)
            lr = float(getattr(optimizer, "lr", math.nan))
            logs.update(lr=lr, seconds=time.perf_counter() - started, compute_seconds=compute,
                        communication_seconds=communicate)
            history.append(logs)
            if schedule is not None:
                schedule.step()
            if verbose and rank == 0:
                share = communicate / max(compute + communicate, 1e-12)
                print(f"epoch {epoch:>{len(str(epochs))}}/{epochs}  loss {logs['loss']:.4f}  acc {logs['accuracy']:.4f}"
                      + (f"  val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}" if validation else "")
                      + f"  lr {lr:.3g}  {logs['seconds']:.2f}s ({100 * share:.0f}% communication, {size} ranks)",
                      file=out, flush=True)
        check_parameters_identical(model, comm, steps)
    finally:
        model.eval()
    history.best_epoch = history.epochs or None
    return history


def _own_random_streams(model: Module, rank: int) -> None:
    """Give each rank its own stream of dropout masks. Every rank builds the model from the same
    seed, so without this the k-th sample of every rank's part would get the same mask; one number
    drawn from the shared stream, with the rank, seeds each rank's own (reproducible) Generator."""
    for module in model.modules():
        rng = getattr(module, "rng", None)
        if isinstance(rng, np.random.Generator):
            module.rng = np.random.default_rng([int(rng.integers(2 ** 62)), rank])


def _part(n: int, rank: int, size: int) -> Tuple[int, int]:
    """The contiguous slice [lo, hi) of a batch of n samples that `rank` of `size` takes (sizes differ
    by at most one; a rank gets none when n < size)."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _max_op() -> Any:
    from mpi4py import MPI
    return MPI.MAX
