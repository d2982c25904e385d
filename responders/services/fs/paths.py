"""The filesystem boundary: every path a tool touches goes through `Roots.resolve`.

Expand `~`, resolve relative paths against the roots, normalise, refuse NUL bytes, require
the path inside a root with a separator boundary (`<root>-evil` is outside), resolve the
real path and require that inside too (symlink escape), and for a path that does not exist
yet, check its real parent. Writes must land in a read-write root.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import ToolError


class PathRefused(ToolError):
    """Raised when a path is outside the roots, malformed, or not writable; names the path and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"access denied: {shown(path)} {reason}")
        self.path = path
        self.reason = reason


_PROC_FD = os.path.isdir("/proc/self/fd") and hasattr(os, "O_PATH")


def real_path(path: str) -> str:
    """`os.path.realpath(path, strict=True)`, resolved by the kernel where it can be: open with O_PATH
    and read /proc/self/fd/N back (two syscalls instead of posixpath's lstat per component). Same OSErrors."""
    if not _PROC_FD:
        return os.path.realpath(path, strict=True)
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # the component walk decides, exactly as before
            return os.path.realpath(path, strict=True)
        raise
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def shown(path: str) -> str:
    """A path quoted for an error message, shortened so a hostile path cannot flood the reply."""
    return repr(path if len(path) <= 200 else path[:200] + "…")


def printable(name: str) -> str:
    """A file name as valid UTF-8 text: bytes that are not UTF-8 (surrogate-escaped by the OS layer) shown as \\xNN."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


@dataclass(frozen=True)
class Root:
    path: str
    """The real (symlink-free) absolute path."""
    given: str
    """The path as configured (absolute, ~-expanded, not resolved): paths may use either form."""
    writable: bool

    def contains(self, p: str) -> bool:
        return _within(p, self.path) or _within(p, self.given)


def _within(p: str, root: str) -> bool:
    if root == os.sep:
        return p.startswith(os.sep)
    return p == root or p.startswith(root + os.sep)


def parse_root(spec: str) -> tuple[str, bool]:
    """`DIR` is read-write, `DIR:ro` read-only, `DIR:rw` explicit read-write."""
    for suffix, writable in ((":ro", False), (":rw", True)):
        if spec.endswith(suffix):
            return spec[: -len(suffix)], writable
    return spec, True


class Roots:
    """The configured roots, real-path resolved once at start. Raises ValueError when none is usable."""

    def __init__(self, specs: list[str]) -> None:
        roots: list[Root] = []
        problems: list[str] = []
        for spec in specs or ["."]:
            raw, writable = parse_root(spec)
            given = os.path.normpath(os.path.abspath(os.path.expanduser(raw)))
            real = os.path.realpath(given)
            if not os.path.isdir(real):
                problems.append(f"{raw!r} is not a directory")
                continue
            roots.append(Root(path=real, given=given, writable=writable))
        if not roots:
            raise ValueError("no usable fs root: " + "; ".join(problems))
        self.roots = tuple(roots)
        self.problems = problems

    @property
    def any_writable(self) -> bool:
        return any(r.writable for r in self.roots)

    def _root_of(self, real: str) -> Root | None:
        # the longest match wins, so a read-only subtree inside a read-write root stays read-only
        best: Root | None = None
        for r in self.roots:
            if _within(real, r.path) and (best is None or len(r.path) > len(best.path)):
                best = r
        return best

    def inside(self, real: str) -> bool:
        """True when the real (symlink-free) path `real` lies in some root."""
        return self._root_of(real) is not None

    def is_root(self, real: str) -> bool:
        return any(real == r.path for r in self.roots)

    def candidate(self, path: str) -> str:
        """The absolute, normalised form of `path`, or PathRefused when it is malformed or lexically outside."""
        if not isinstance(path, str) or not path:
            raise PathRefused(str(path), "is empty")
        if "\x00" in path:
            raise PathRefused(path.replace("\x00", "\\0"), "contains a NUL byte")
        expanded = os.path.expanduser(path)
        if os.path.isabs(expanded):
            candidate = os.path.normpath(expanded)
        else:
            candidate = self._relative(expanded)
        if not any(r.contains(candidate) for r in self.roots):
            raise PathRefused(path, "is outside the allowed directories")
        return candidate

    def resolve(self, path: str, *, write: bool = False, must_exist: bool = True) -> Path:
        """The real path for `path`, or PathRefused. `must_exist=False` allows a new file in an existing directory."""
        candidate = self.candidate(path)
        try:
            real = real_path(candidate)
            exists = True
        except FileNotFoundError:
            exists = False
            real = ""
        except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES...
            raise PathRefused(path, f"cannot be resolved: {exc.strerror or exc}") from None
        if exists:
            root = self._root_of(real)
            if root is None:
                raise PathRefused(path, "resolves (through a symlink) outside the allowed directories")
        else:
            if must_exist:
                raise ToolError(f"no such file or directory: {shown(path)}")
            real_parent, root = self._real_parent(path, candidate)
            if os.path.islink(candidate):  # a dangling symlink: never create through it
                raise PathRefused(path, "is a symlink whose target does not exist")
            real = os.path.join(real_parent, os.path.basename(candidate))
        if write and not root.writable:
            raise PathRefused(path, f"is in the read-only root {root.given!r}")
        return Path(real)

    def resolve_entry(self, path: str, *, write: bool = True) -> Path:
        """The directory entry `path` names, itself: its parent resolved, its last component not followed.

        For tools that act on the entry (move, delete): a symlink is moved or deleted, never its target.
        Refuses a root itself and a directory that contains a root (so a read-only root nested in a
        read-write one cannot be removed through its parent).
        """
        candidate = self.candidate(path)
        if any(candidate in (r.path, r.given) for r in self.roots):
            raise PathRefused(path, "is an allowed directory itself")
        real_parent, root = self._real_parent(path, candidate)
        entry = os.path.join(real_parent, os.path.basename(candidate))
        if self.is_root(entry):
            raise PathRefused(path, "is an allowed directory itself")
        if not os.path.lexists(entry):
            raise ToolError(f"no such file or directory: {shown(path)}")
        for r in self.roots:
            if _within(r.path, entry) and not os.path.islink(entry):
                raise PathRefused(path, f"contains the allowed directory {r.given!r}")
        if write and not root.writable:
            raise PathRefused(path, f"is in the read-only root {root.given!r}")
        return Path(entry)

    def resolve_new_dirs(self, path: str) -> tuple[Path, list[str]]:
        """For `mkdir -p`: the deepest existing directory (real, writable) and the components to create under it."""
        candidate = self.candidate(path)
        missing: list[str] = []
        existing = candidate
        try:
            while not os.path.lexists(existing):
                existing, name = os.path.split(existing)
                missing.append(name)
        except OSError as exc:
            raise PathRefused(path, f"cannot be resolved: {exc.strerror or exc}") from None
        missing.reverse()
        if any(len(os.fsencode(m)) > 255 for m in missing):
            raise PathRefused(path, "cannot be resolved: File name too long")
        real = self.resolve(existing, write=True)
        if not real.is_dir():
            raise ToolError(f"{shown(existing)} exists and is not a directory")
        return real, missing

    def _real_parent(self, path: str, candidate: str) -> tuple[str, Root]:
        """The real parent directory of `candidate` and its root; refuses a parent outside the roots."""
        parent = os.path.dirname(candidate)
        try:
            real_parent = real_path(parent)
        except FileNotFoundError:
            raise ToolError(f"parent directory does not exist: {shown(parent)}") from None
        except OSError as exc:
            raise PathRefused(path, f"cannot be resolved: {exc.strerror or exc}") from None
        root = self._root_of(real_parent)
        if root is None:
            raise PathRefused(path, "has a parent that resolves outside the allowed directories")
        return real_parent, root

    def _relative(self, rel: str) -> str:
        """A relative path is taken against the first root where it exists, else the first root."""
        for r in self.roots:
            p = os.path.normpath(os.path.join(r.given, rel))
            if os.path.lexists(p):
                return p
        return os.path.normpath(os.path.join(self.roots[0].given, rel))
