"""Tests for agentops.safefiles: paths walked from the root descriptor, in-root links followed and
outward ones refused, special files and hard links refused without blocking, size limits, writes that
are all or nothing, and no escape while directories are swapped for symlinks under concurrent use."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import pytest

from agentops.errors import ConfigError
from agentops.safefiles import PathOutsideRoot, SafeFiles, ToolDenied


@pytest.fixture()
def sandbox(tmp_path):
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("top secret")
    return root, tmp_path


def test_safe_files_read_write_list_inside_root(sandbox) -> None:
    root, _ = sandbox
    files = SafeFiles(root)
    assert files.read_file("docs/a.txt") == "hello"
    assert files.write_file("docs/b.txt", "new") == "wrote 3 characters to docs/b.txt"
    assert (root / "docs" / "b.txt").read_text() == "new"
    assert files.list_dir() == "docs/"
    assert files.list_dir("docs") == "a.txt\nb.txt"
    assert files.read_file("docs/missing.txt").startswith("ERROR: no file")
    assert files.write_file("nodir/x.txt", "x").startswith("ERROR: directory")
    assert files.list_dir("docs/a.txt").startswith("ERROR:")
    assert files.read_file("docs").startswith(("ERROR", "DENIED"))


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "docs/../../secret.txt",
        "/etc/passwd",
        "~/.ssh/id_rsa",
        "C:\\Windows\\win.ini",
        "..\\secret.txt",
        "",
        "docs/\x00a.txt",
    ],
)
def test_safe_files_refuse_traversal_and_absolute_paths(sandbox, path: str) -> None:
    root, _ = sandbox
    files = SafeFiles(root)
    assert files.read_file(path).startswith("DENIED:")
    assert files.write_file(path, "x").startswith("DENIED:")
    with pytest.raises(PathOutsideRoot):
        files.resolve(path)


def test_safe_files_refuse_symlinks_out_of_root(sandbox) -> None:
    root, outside = sandbox
    os.symlink(outside / "secret.txt", root / "docs" / "link.txt")
    os.symlink(outside, root / "escape")
    os.symlink(root / "docs" / "a.txt", root / "inside_link.txt")
    files = SafeFiles(root)
    assert files.read_file("docs/link.txt").startswith("DENIED:")
    assert files.read_file("escape/secret.txt").startswith("DENIED:")
    assert files.write_file("docs/link.txt", "pwned").startswith("DENIED:")
    assert (outside / "secret.txt").read_text() == "top secret"
    assert files.list_dir("escape").startswith("DENIED:")
    assert files.read_file("inside_link.txt") == "hello"  # a link that stays inside the root is fine


def test_safe_files_size_limit_and_bad_root(sandbox, tmp_path) -> None:
    root, _ = sandbox
    (root / "big.txt").write_text("x" * 50)
    assert SafeFiles(root, max_bytes=10).read_file("big.txt").startswith("ERROR: 'big.txt' is larger")
    with pytest.raises(ConfigError, match="not a directory"):
        SafeFiles(tmp_path / "missing")


def test_links_inside_the_root_are_followed_links_out_are_not(sandbox) -> None:
    root, _ = sandbox
    os.symlink("docs", root / "alias")  # relative, stays inside
    os.symlink("../docs/a.txt", root / "docs" / "up_and_back.txt")
    os.symlink("..", root / "docs" / "parent")  # docs/parent -> root: fine
    os.symlink("../..", root / "docs" / "grandparent")  # climbs out of the root
    os.symlink("loop", root / "loop")
    files = SafeFiles(root)
    assert files.read_file("alias/a.txt") == "hello"
    assert files.read_file("docs/up_and_back.txt") == "hello"
    assert files.read_file("docs/parent/docs/a.txt") == "hello"
    assert files.list_dir("alias") == "a.txt\ngrandparent\nparent\nup_and_back.txt"
    assert files.resolve("alias/a.txt") == root / "docs" / "a.txt"
    assert files.read_file("docs/grandparent/secret.txt").startswith("DENIED:")
    assert "more than 40 symlinks" in files.read_file("loop")
    with pytest.raises(PathOutsideRoot):
        files.resolve("docs/grandparent/secret.txt")
    assert files.write_file("docs/up_and_back.txt", "x").startswith("DENIED:")  # writes never go through a link
    assert (root / "docs" / "a.txt").read_text() == "hello"


def test_a_fifo_is_refused_without_blocking(sandbox) -> None:
    root, _ = sandbox
    fifo = root / "pipe"
    os.mkfifo(fifo)
    files = SafeFiles(root)
    results: list[str] = []
    reader = threading.Thread(target=lambda: results.append(files.read_file("pipe")), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():  # unblock the reader before failing, so the run does not hang
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_file blocked on a FIFO")
    assert results == ["DENIED: 'pipe' is a FIFO, not a regular file"]
    assert files.write_file("pipe", "x") == "DENIED: 'pipe' is a FIFO; write_file only replaces regular files"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_sockets_and_devices_are_refused(sandbox) -> None:
    root, _ = sandbox
    files = SafeFiles(root)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        assert files.read_file("sock") == "DENIED: 'sock' is a socket, not a regular file"
        assert files.write_file("sock", "x").startswith("DENIED: 'sock' is a socket")
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return  # creating a device needs privileges this run does not have
    assert files.read_file("null") == "DENIED: 'null' is a character device, not a regular file"


def test_hard_links_are_refused_unless_allowed(sandbox) -> None:
    root, outside = sandbox
    os.link(outside / "secret.txt", root / "docs" / "innocent.txt")
    assert SafeFiles(root).read_file("docs/innocent.txt").startswith("DENIED: 'docs/innocent.txt' has 2 hard links")
    assert SafeFiles(root, allow_hardlinks=True).read_file("docs/innocent.txt") == "top secret"
    # A write replaces the directory entry: the outside file keeps its content.
    assert SafeFiles(root).write_file("docs/innocent.txt", "new").startswith("wrote")
    assert (outside / "secret.txt").read_text() == "top secret"


def test_write_limits_and_no_partial_writes(sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = sandbox
    files = SafeFiles(root, max_write_bytes=10)
    assert files.write_file("docs/big.txt", "x" * 11) == "ERROR: content is larger than 10 bytes"
    assert not (root / "docs" / "big.txt").exists()
    assert files.write_file("docs", "x") == "ERROR: 'docs' is a directory"

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    assert files.write_file("docs/a.txt", "replaced") == "DENIED: cannot write 'docs/a.txt' (No space left on device)"
    assert (root / "docs" / "a.txt").read_text() == "hello"  # the old content, whole
    assert sorted(p.name for p in (root / "docs").iterdir()) == ["a.txt"]  # no temporary left behind


def test_validation(sandbox) -> None:
    root, _ = sandbox
    for kw in ({"max_bytes": 0}, {"max_write_bytes": -1}, {"max_bytes": 1.5}):
        with pytest.raises(ConfigError, match="whole number of bytes"):
            SafeFiles(root, **kw)
    with SafeFiles(root) as files:
        assert files.read_file("docs/a.txt") == "hello"
    assert issubclass(PathOutsideRoot, ToolDenied) and issubclass(PathOutsideRoot, PermissionError)


# ------------------------------------------------------------------------------------------------
# Races: directories swapped for symlinks while the tools run
# ------------------------------------------------------------------------------------------------


def _race(root, outside, attempt, tries: int, workers: int = 4) -> list[str]:
    """Run ``attempt()`` ``tries`` times from ``workers`` threads while another thread keeps swapping
    ``root/a`` and ``root/a/b`` for symlinks to ``outside`` (absolute and relative) and back."""
    stop = threading.Event()

    def swap(path, target) -> None:
        saved = path.with_name(path.name + "_saved")
        os.rename(path, saved)
        os.symlink(target, path)
        time.sleep(0)
        os.unlink(path)
        os.rename(saved, path)

    def attacker() -> None:
        while not stop.is_set():
            swap(root / "a", outside)
            swap(root / "a", os.path.relpath(outside, root))
            swap(root / "a" / "b", outside / "b")
            stop.wait(0.0005)  # the tree as it should be, briefly: some calls go through

    results: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        mine = [attempt() for _ in range(n)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(tries // workers,), daemon=True) for _ in range(workers)]
    evil = threading.Thread(target=attacker, daemon=True)
    evil.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    stop.set()
    evil.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "the race did not finish in time"
    return results


@pytest.fixture()
def race_dirs(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (outside / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("inside")
    (outside / "b" / "f.txt").write_text("SECRET")
    return root, outside


def test_concurrent_reads_never_escape_while_directories_are_swapped(race_dirs) -> None:
    """Issue 11 #8: a middle directory swapped for a symlink between check and open escaped 27 times
    in 20,000 reads (O_NOFOLLOW only protected the last component)."""
    root, outside = race_dirs
    files = SafeFiles(root)
    results = _race(root, outside, lambda: files.read_file("a/b/f.txt"), tries=20_000)
    assert len(results) == 20_000
    assert sum(r == "SECRET" for r in results) == 0
    assert sum(r == "inside" for r in results) > 0  # reads went through between swaps
    assert set(results) <= {"inside"} | {r for r in results if r.startswith(("DENIED:", "ERROR:"))}


def test_concurrent_writes_never_escape_while_directories_are_swapped(race_dirs) -> None:
    root, outside = race_dirs
    files = SafeFiles(root, fsync=False)
    results = _race(root, outside, lambda: files.write_file("a/b/out.txt", "payload"), tries=20_000)
    assert sum(r.startswith("wrote") for r in results) > 0
    assert not (outside / "b" / "out.txt").exists() and not (outside / "out.txt").exists()
    assert sorted(p.name for p in outside.rglob("*")) == ["b", "f.txt"]  # nothing written outside
    assert (outside / "b" / "f.txt").read_text() == "SECRET"
    assert not [p for p in root.rglob(".agentops-*")]  # no temporary left behind
