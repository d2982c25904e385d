"""directory_tree and search_files: the two name-based walks (walk.py bounds and checks them)."""

from __future__ import annotations

from pathlib import Path

from .globs import Excluder, Glob, NameOrPathGlob, has_magic
from .outputs import DirectoryTree, SearchOutput, TreeEntry
from .paths import Roots, printable
from .walk import Walk

MAX_TREE_ENTRIES = 10_000
MAX_SEARCH_RESULTS = 1_000


def directory_tree(
    roots: Roots, start: Path, exclude: list[str], *, cap: int, max_entries: int, seconds: float
) -> DirectoryTree:
    """The tree below `start` as nested {name, type, children}, breadth-first so a cut keeps the top levels.
    Stops at MAX_TREE_ENTRIES entries or about `cap` bytes of JSON."""
    walk = Walk(roots, start, exclude=Excluder(exclude), max_entries=max_entries, seconds=seconds)
    top: list[TreeEntry] = []
    children: dict[str, list[TreeEntry]] = {"": top}
    count = size = 0
    truncated = False
    for e in walk:
        siblings = children.get(e.parent)
        if siblings is None:  # below a directory that was not entered (already seen)
            continue
        name = printable(e.name)
        count += 1
        # the reply holds the tree twice: indented JSON text and compact structuredContent
        size += 2 * len(name) + 110 + 8 * e.rel.count("/")
        if count > MAX_TREE_ENTRIES or size > cap:
            truncated = True
            break
        if e.is_dir:
            node = TreeEntry(name=name, type="directory", children=[])
            assert isinstance(node.children, list)
            children[e.rel] = node.children
        else:
            node = TreeEntry(name=name, type="file")
        siblings.append(node)
    notes = walk.notes()
    if truncated:
        notes.insert(0, f"tree cut after {count - 1} entries; ask for a subdirectory or add excludePatterns")
    return DirectoryTree(
        path=printable(str(start)), tree=top, truncated=truncated or walk.stopped is not None, notes=notes
    )


class _Pattern:
    """search_files' pattern: a glob on the relative path (and on the name when it has no '/');
    without wildcards, a case-insensitive substring of the name, as earlier reference versions did."""

    def __init__(self, pattern: str) -> None:
        self.glob = NameOrPathGlob(pattern) if has_magic(pattern) or "/" in pattern else None
        self.needle = pattern.casefold()
        Glob(pattern)  # validate length and braces even for the substring form

    def match(self, rel: str, name: str) -> bool:
        if self.glob is not None:
            return self.glob.match(rel, name)
        return self.needle in name.casefold()


def search_files(
    roots: Roots, start: Path, pattern: str, exclude: list[str], *, cap: int, max_entries: int, seconds: float
) -> SearchOutput:
    """Full paths of the entries below `start` whose relative path or name matches `pattern`,
    at most MAX_SEARCH_RESULTS of them or about `cap` bytes of reply."""
    pat = _Pattern(pattern)
    walk = Walk(roots, start, exclude=Excluder(exclude), max_entries=max_entries, seconds=seconds)
    matches: list[str] = []
    truncated = False
    size = 0
    for e in walk:
        if pat.match(e.rel, e.name):
            shown = printable(e.shown)
            size += 2 * len(shown) + 4
            if len(matches) >= MAX_SEARCH_RESULTS or size > cap:
                truncated = True
                break
            matches.append(shown)
    notes = walk.notes()
    if truncated:
        notes.insert(0, f"stopped after {len(matches)} matches; use a narrower pattern or path")
    return SearchOutput(matches=matches, truncated=truncated or walk.stopped is not None, notes=notes)
