"""Data-parallel SGD (nn/distributed.py): under `mpiexec -n 2`, the ranks' averaged gradient is the
whole mini-batch's gradient, a few epochs give one process's weights, and a rank whose weights differ
is caught; in one process, one Allreduce per step and the message when mpi4py is missing."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nn
from nn.distributed import GradientAverager, _part, allreduce_gradients

RANKS_SCRIPT = """
import sys
import numpy as np
from mpi4py import MPI
import nn
from nn.distributed import _part, allreduce_gradients, check_parameters_identical, fit_data_parallel, ParameterDivergence

out = sys.argv[1]
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
rng = np.random.default_rng(0)
x = rng.normal(size=(25, 6))
y = rng.integers(0, 3, size=25)

# 1. one step's gradient: each rank its part of the batch of 25 (13 + 12), then one Allreduce
model = nn.MLP([6, 5, 3], activation="sigmoid", output_activation="sigmoid", seed=0, dtype=np.float64)
lo, hi = _part(len(y), rank, size)
cost = nn.train.get_loss("bce")(model(x[lo:hi]), y[lo:hi]) + nn.l2_penalty(model, 1e-3)
cost.backward()
allreduce_gradients(model, comm, weight=(hi - lo) / len(y))
if rank == 0:
    np.savez(out + "/grads.npz", **{name: p.grad.data for name, p in model.named_parameters()})

# 2. three epochs of data-parallel training; rank 1 starts from other weights, which the broadcast replaces
model = nn.MLP([6, 5, 3], activation="sigmoid", output_activation="sigmoid", seed=1 + rank, dtype=np.float64)
optimizer = nn.SGD(model, lr=0.5)
fit_data_parallel(model, "bce", optimizer, (x, y), comm, epochs=3, batch_size=7, l2=1e-3,
                  schedule=nn.CosineDecay(optimizer, 3), seed=4, check_every=2, verbose=False)
if rank == 0:
    np.savez(out + "/weights.npz", **model.state_dict())

# 3. a rank that changes its weights on its own is caught on every rank
if rank == 1:
    model.parameters()[0].data[0, 0] += 1e-6
try:
    check_parameters_identical(model, comm, step=99)
    message = "no error"
except ParameterDivergence as error:
    message = str(error)
with open(f"{out}/diverged-{rank}.txt", "w") as f:
    f.write(message)

# 4. dropout: each rank draws its own masks (the same model seed on every rank must not mean the same
#    masks); 24 samples in batches of 8, so both ranks draw as many masks and would otherwise draw the same
model = nn.MLP([6, 5, 3], dropout=0.5, output_activation="sigmoid", seed=0, dtype=np.float64)
fit_data_parallel(model, "bce", nn.SGD(model, lr=0.1), (x[:24], y[:24]), comm, epochs=1, batch_size=8, verbose=False)
model.train()
outputs = comm.allgather(model(x).data)
if rank == 0:
    with open(f"{out}/dropout.txt", "w") as f:
        f.write("same" if np.array_equal(outputs[0], outputs[1]) else "differ")
"""


def _mpiexec():
    pytest.importorskip("mpi4py", reason="needs the mpi extra: pip install 'autograd-lite[mpi]'")
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec (the mpich wheel of the mpi extra provides one)")
    return found


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(25, 6)), rng.integers(0, 3, size=25)


def test_two_ranks_average_to_the_whole_batch_gradient_and_train_as_one_process(tmp_path):
    mpiexec = _mpiexec()
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    x, y = _data()

    # the single-process gradient of the whole batch of 25
    model = nn.MLP([6, 5, 3], activation="sigmoid", output_activation="sigmoid", seed=0, dtype=np.float64)
    cost = nn.train.get_loss("bce")(model(x), y) + nn.l2_penalty(model, 1e-3)
    cost.backward()
    averaged = np.load(tmp_path / "grads.npz")
    for name, p in model.named_parameters():
        assert np.max(np.abs(averaged[name] - p.grad.data)) <= 1e-12, name

    # the same three epochs in one process
    model = nn.MLP([6, 5, 3], activation="sigmoid", output_activation="sigmoid", seed=1, dtype=np.float64)
    optimizer = nn.SGD(model, lr=0.5)
    nn.fit(model, "bce", optimizer, (x, y), epochs=3, batch_size=7, l2=1e-3,
           schedule=nn.CosineDecay(optimizer, 3), seed=4, verbose=False)
    trained = np.load(tmp_path / "weights.npz")
    for name, value in model.state_dict().items():
        assert np.allclose(trained[name], value, rtol=0, atol=1e-12), name
    assert any(not np.allclose(trained[n], v, atol=1e-3) for n, v in
               nn.MLP([6, 5, 3], seed=1, dtype=np.float64).state_dict().items())   # it did train

    assert (tmp_path / "dropout.txt").read_text() == "differ"
    for rank in (0, 1):
        message = (tmp_path / f"diverged-{rank}.txt").read_text()
        assert "after step 99 the parameters of rank(s) 1 differ from rank 0's" in message
        assert "1e-06" in message and "hidden.0.weight" in message


class _CountingComm:
    """COMM_SELF that counts Allreduce calls."""

    def __init__(self, comm):
        self.comm, self.allreduces = comm, 0

    def Get_size(self):
        return self.comm.Get_size()

    def Allreduce(self, *args, **kwargs):
        self.allreduces += 1
        return self.comm.Allreduce(*args, **kwargs)


def test_one_allreduce_of_one_flat_buffer_per_step():
    MPI = pytest.importorskip("mpi4py.MPI", reason="needs the mpi extra")
    x, y = _data()
    model = nn.MLP([6, 5, 4, 3], output_activation="sigmoid", seed=0, dtype=np.float64)
    comm = _CountingComm(MPI.COMM_SELF)
    for step in range(3):
        model.zero_grad()
        nn.train.get_loss("bce")(model(x), y).backward()
        expected = [p.grad.data.copy() for p in model.parameters()]
        allreduce_gradients(model, comm)
        # one rank: the average is the gradient itself
        assert all(np.array_equal(e, p.grad.data) for e, p in zip(expected, model.parameters()))
    assert comm.allreduces == 3
    averager = model._gradient_averager
    assert isinstance(averager, GradientAverager) and averager.buffer.size == model.num_parameters()


def test_batch_parts_cover_the_batch_once():
    for n in (1, 2, 7, 25, 100):
        for size in (1, 2, 3, 8):
            parts = [_part(n, r, size) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1


def test_without_mpi4py_the_message_names_the_extra():
    code = textwrap.dedent("""
        import sys
        sys.modules["mpi4py"] = None
        import nn.distributed
        try:
            nn.distributed.world()
        except ImportError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == ("--data-parallel needs mpi4py and an MPI runtime, which are not installed: "
                                   "pip install 'autograd-lite[mpi]'")
