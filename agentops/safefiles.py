"""File tools confined to a root directory that hold under races, special files and hard links.

:class:`SafeFiles` never resolves a path string and then opens it (a symlink swapped in between would
win). It holds the root directory open and walks every path from that descriptor one component at a
time with ``os.open(name, O_DIRECTORY | O_NOFOLLOW, dir_fd=parent)``, so each step is anchored to the
directory actually opened before it. A symbolic link met on the way is followed only *lexically inside
the root*: its target is read and walked from the same descriptors, ``..`` can never climb above the
root, and a target outside the root is refused. The last component is opened with ``O_NOFOLLOW`` too,
so a link swapped in at the last moment makes the open fail rather than escape.

Reads refuse anything that is not a regular file — FIFOs, sockets and devices are checked with
``lstat`` before opening and again with ``fstat`` after a non-blocking open, so a FIFO can never block
the tool — and files with more than one hard link (a link to a file outside the root looks like an
ordinary file inside it) unless ``allow_hardlinks=True``. Writes go to a fresh temporary file created
with ``O_CREAT | O_EXCL | O_NOFOLLOW`` in the same directory, then ``rename`` over the target within
that directory descriptor: a write is all or nothing, never through a link, never into a FIFO.

Why hand-written: the kernel's ``openat2(RESOLVE_BENEATH)`` is not exposed by Python's standard
library, and no maintained package offers a descriptor-anchored walk. POSIX only (``dir_fd`` support).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.errors import ConfigError, ToolDenied

__all__ = ["PathOutsideRoot", "SafeFiles", "ToolDenied"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_DIR_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
_MAX_LINKS = 40  # the kernel's own limit on links followed in one lookup


class PathOutsideRoot(ToolDenied, PermissionError):
    """A path escapes the sandbox root (absolute, ``..``, or a symlink pointing out)."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


class SafeFiles:
    """Read, write and list files under ``root`` only; thread-safe (every call uses its own descriptors).

    The tool methods return text (``"DENIED: ..."`` for a refusal, ``"ERROR: ..."`` for an ordinary
    failure) so a model never sees a traceback; :meth:`resolve` raises :class:`PathOutsideRoot` for
    programmatic callers. The root stays open until :meth:`close` (or garbage collection), so renaming
    or replacing the root path later cannot redirect the tools.

    Args:
        root: the directory the tools are confined to (must exist).
        max_bytes: largest file :meth:`read_file` returns.
        max_write_bytes: largest content :meth:`write_file` accepts (default: ``max_bytes``).
        allow_hardlinks: read files that have more than one hard link (off: such a file may be an
            outside file linked into the root).
        fsync: flush each write to disk before it replaces the target (durable across a crash).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_bytes: int = 1_000_000,
        max_write_bytes: int | None = None,
        allow_hardlinks: bool = False,
        fsync: bool = True,
    ) -> None:
        if os.open not in os.supports_dir_fd or not (_NOFOLLOW and _DIRECTORY):
            raise ConfigError("SafeFiles needs POSIX openat (dir_fd, O_NOFOLLOW, O_DIRECTORY); use Linux or macOS")
        for name, value in (("max_bytes", max_bytes), ("max_write_bytes", max_write_bytes)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"SafeFiles {name} must be a whole number of bytes ≥ 1, got {value!r}")
        real = Path(os.path.realpath(root))
        if not real.is_dir():
            raise ConfigError(f"SafeFiles root {str(root)!r} is not a directory; create it first")
        self.root = real
        self.max_bytes = max_bytes
        self.max_write_bytes = max_write_bytes if max_write_bytes is not None else max_bytes
        self.allow_hardlinks = bool(allow_hardlinks)
        self.fsync = bool(fsync)
        self._root_fd = os.open(real, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
        self._finalizer = weakref.finalize(self, os.close, self._root_fd)

    def close(self) -> None:
        """Close the root directory descriptor (the tools stop working)."""
        self._finalizer()

    def __enter__(self) -> SafeFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- walking -------------------------------------------------------------------------------
    def _parts(self, path: str) -> list[str]:
        if not isinstance(path, str) or not path.strip():
            raise PathOutsideRoot("empty path; give a path relative to the sandbox root")
        if "\x00" in path:
            raise PathOutsideRoot("path contains a NUL byte")
        if os.path.isabs(path) or path.startswith(("\\", "~")) or re.match(r"^[A-Za-z]:", path):
            raise PathOutsideRoot(f"absolute path {path!r} refused; use a path relative to the sandbox root")
        parts = [p for p in re.split(r"[\\/]+", path) if p not in ("", ".")]
        if ".." in parts:
            raise PathOutsideRoot(f"path {path!r} refused: '..' is not allowed")
        return parts

    def _link_parts(self, target: str, shown: str) -> tuple[list[str], bool]:
        """A symlink target as components, and whether it restarts from the root (an absolute target)."""
        if target.startswith("/"):
            root = str(self.root)
            if target != root and not target.startswith(root + "/"):
                raise PathOutsideRoot(f"path {shown!r} goes through a symlink that points outside the sandbox root")
            target = target[len(root) :]
        return [p for p in target.split("/") if p not in ("", ".")], target.startswith("/") or target == ""

    @contextmanager
    def _walk(self, path: str, *, follow_last: bool) -> Iterator[tuple[int, str, str]]:
        """Yield (directory fd, last name, where it lands relative to the root) for ``path``.

        Middle components are opened as directories without following links, each from the one
        before; a link is expanded inside the root. With ``follow_last`` the last component is
        expanded the same way when it is a link. The last name is ``""`` when ``path`` is the root.
        """
        todo, stack, names, links = self._parts(path), [], [], 0
        try:
            while todo:
                name = todo.pop(0)
                if name == "..":
                    if not stack:
                        raise PathOutsideRoot(f"path {path!r} goes through a symlink that climbs out of the root")
                    os.close(stack.pop())
                    names.pop()
                    continue
                parent = stack[-1] if stack else self._root_fd
                if not todo and not (follow_last and _is_link(name, parent)):
                    yield parent, name, "/".join([*names, name])
                    return
                if todo:
                    try:
                        stack.append(os.open(name, _DIR_FLAGS, dir_fd=parent))
                        names.append(name)
                        continue
                    except OSError as exc:
                        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                            raise
                links += 1
                if links > _MAX_LINKS:
                    raise PathOutsideRoot(f"path {path!r} follows more than {_MAX_LINKS} symlinks")
                parts, from_root = self._link_parts(_readlink(name, parent), path)
                if from_root:
                    while stack:
                        os.close(stack.pop())
                    names.clear()
                todo[:0] = parts
            yield (stack[-1] if stack else self._root_fd), "", "/".join(names)
        finally:
            for fd in stack:
                os.close(fd)

    def resolve(self, path: str) -> Path:
        """Where ``path`` lands inside the root (links followed inside it); raises :class:`PathOutsideRoot`.

        Directories on the way must exist (``FileNotFoundError`` otherwise); the last component need not.
        """
        with self._walk(path, follow_last=True) as (_, _, inside):
            return self.root / inside if inside else self.root

    # -- tools ---------------------------------------------------------------------------------
    def read_file(self, path: str) -> str:
        """Read a UTF-8 text file under the sandbox root."""
        try:
            with self._walk(path, follow_last=True) as (parent, name, _):
                data = self._read(parent, name, path)
        except ToolDenied as exc:
            return f"DENIED: {exc}"
        except FileNotFoundError:
            return f"ERROR: no file {path!r}"
        except NotADirectoryError:
            return f"ERROR: a component of {path!r} is not a directory"
        except OSError as exc:
            return f"DENIED: cannot open {path!r} ({exc.strerror})"
        if isinstance(data, str):
            return data
        return data.decode("utf-8", errors="replace")

    def _read(self, parent: int, name: str, path: str) -> bytes | str:
        if not name:
            return f"ERROR: {path!r} is a directory; use list_dir"
        before = _lstat(name, parent)
        if stat.S_ISDIR(before.st_mode):
            return f"ERROR: {path!r} is a directory; use list_dir"
        if not stat.S_ISREG(before.st_mode):
            raise ToolDenied(f"{path!r} is {_kind(before.st_mode)}, not a regular file")
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ToolDenied(f"{path!r} changed while it was being opened") from None
            raise
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(st.st_mode):
                raise ToolDenied(f"{path!r} changed while it was being opened")
            if st.st_nlink > 1 and not self.allow_hardlinks:
                raise ToolDenied(
                    f"{path!r} has {st.st_nlink} hard links (it may be a file from outside the root); "
                    "pass allow_hardlinks=True to read such files"
                )
            if st.st_size > self.max_bytes:
                return f"ERROR: {path!r} is larger than {self.max_bytes} bytes"
            data = fh.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            return f"ERROR: {path!r} is larger than {self.max_bytes} bytes"
        return data

    def write_file(self, path: str, content: str) -> str:
        """Write (create or replace) a UTF-8 text file under the sandbox root, all or nothing."""
        if not isinstance(content, str):
            return f"ERROR: content must be text, got {type(content).__name__}"
        data = content.encode("utf-8")
        if len(data) > self.max_write_bytes:
            return f"ERROR: content is larger than {self.max_write_bytes} bytes"
        try:
            with self._walk(path, follow_last=False) as (parent, name, shown):
                if not name:
                    return f"ERROR: {path!r} is a directory"
                self._replace(parent, name, data, path)
        except ToolDenied as exc:
            return f"DENIED: {exc}"
        except (FileNotFoundError, NotADirectoryError):
            return f"ERROR: directory of {path!r} does not exist"
        except IsADirectoryError:
            return f"ERROR: {path!r} is a directory"
        except OSError as exc:
            return f"DENIED: cannot write {path!r} ({exc.strerror})"
        return f"wrote {len(content)} characters to {shown}"

    def _replace(self, parent: int, name: str, data: bytes, path: str) -> None:
        try:
            before = _lstat(name, parent)
        except FileNotFoundError:
            before = None
        if before is not None and not stat.S_ISREG(before.st_mode):
            if stat.S_ISDIR(before.st_mode):
                raise IsADirectoryError(errno.EISDIR, path)
            raise ToolDenied(f"{path!r} is {_kind(before.st_mode)}; write_file only replaces regular files")
        temp = f".agentops-{secrets.token_hex(8)}.tmp"
        fd = os.open(temp, _TEMP_FLAGS, 0o644, dir_fd=parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                if before is not None:
                    os.fchmod(fd, stat.S_IMODE(before.st_mode))
                fh.write(data)
                fh.flush()
                if self.fsync:
                    os.fsync(fd)
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise

    def list_dir(self, path: str = ".") -> str:
        """List a directory under the sandbox root (one entry per line, directories end with '/')."""
        try:
            with self._walk(path or ".", follow_last=True) as (parent, name, _):
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent) if name else os.dup(parent)
                try:
                    with os.scandir(fd) as entries:
                        names = sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in entries)
                finally:
                    os.close(fd)
        except ToolDenied as exc:
            return f"DENIED: {exc}"
        except (FileNotFoundError, NotADirectoryError):
            return f"ERROR: {path!r} is not a directory"
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                return f"ERROR: {path!r} is not a directory"
            return f"DENIED: cannot list {path!r} ({exc.strerror})"
        return "\n".join(n for n in names if not n.startswith(".agentops-"))


def _lstat(name: str, parent: int) -> os.stat_result:
    return os.stat(name, dir_fd=parent, follow_symlinks=False)


def _is_link(name: str, parent: int) -> bool:
    try:
        return stat.S_ISLNK(_lstat(name, parent).st_mode)
    except FileNotFoundError:
        return False


def _readlink(name: str, parent: int) -> str:
    """The target of the link ``name``; a non-link where a directory was needed is NotADirectoryError."""
    try:
        return os.readlink(name, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise NotADirectoryError(errno.ENOTDIR, f"{name!r} is not a directory") from None
        raise
