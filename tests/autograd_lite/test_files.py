"""The one atomic-write helper: only regular files, symlinks followed, nothing left behind."""
import io
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from autograd_lite.files import atomic_path, atomic_write, check_output_path, read_into


def test_atomic_write_replaces_the_file_only_when_complete(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "save", "w") as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(target, "save", "w") as f:
        f.write("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_empty_path_is_refused():
    with pytest.raises(ValueError, match="save: the output path is empty"):
        check_output_path("", "save")


def test_a_bytes_path_is_a_type_error_not_an_empty_path():
    with pytest.raises(TypeError, match="save: the output path must be a str or a path, got bytes"):
        check_output_path(b"model.npz", "save")


def test_read_into_fills_in_chunks_and_counts_a_short_stream():
    data = bytes(range(256)) * 40
    buffer = bytearray(len(data))
    assert read_into(io.BytesIO(data), memoryview(buffer), chunk=1000) == len(data)
    assert buffer == data
    longer = bytearray(len(data) + 7)
    assert read_into(io.BytesIO(data), memoryview(longer), chunk=1000) == len(data)


def test_directory_target_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is a directory, not a regular file"):
        check_output_path(tmp_path, "save")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_target_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        with atomic_write(fifo, "save") as f:
            f.write(b"x")
    assert os.listdir(tmp_path) == ["pipe"]


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_device_target_is_refused():
    with pytest.raises(ValueError, match="save: '/dev/null' is a device"):
        check_output_path("/dev/null", "save")


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not exist; create it first"):
        check_output_path(tmp_path / "nope" / "model.npz", "save")


def test_symlink_is_followed_and_kept(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with atomic_write(link, "save", "w") as f:
        f.write("new")
    assert link.is_symlink() and real.read_text() == "new"


def test_atomic_path_keeps_the_mode_of_the_replaced_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o600)
    with atomic_path(target, "save") as tmp:
        with open(tmp, "wb") as f:
            f.write(b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    script = textwrap.dedent(f"""
        import sys, time
        from autograd_lite.files import atomic_write
        with atomic_write({str(target)!r}, "save") as f:
            f.write(b"partial")
            print("writing", flush=True)
            time.sleep(30)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"writing"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=20) == 128 + signal.SIGTERM
    assert os.listdir(tmp_path) == ["model.bin"]
    assert target.read_bytes() == b"old"
