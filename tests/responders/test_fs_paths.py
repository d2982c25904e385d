"""Unit tests of the filesystem boundary, responders.services.fs.paths.Roots.resolve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from responders.errors import ToolError
from responders.services.fs.paths import PathRefused, Roots, parse_root


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A root with a file and a subdirectory, and an outside directory (plus a `<root>-evil` sibling)."""
    base = tmp_path.resolve()
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "inside.txt").write_text("in")
    (root / "sub" / "deep.txt").write_text("deep")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    evil = base / "root-evil"
    evil.mkdir()
    (evil / "x.txt").write_text("evil")
    return {"base": base, "root": root, "outside": outside, "evil": evil}


@pytest.fixture
def roots(layout: dict[str, Path]) -> Roots:
    return Roots([str(layout["root"])])


def test_path_refused_is_a_tool_error() -> None:
    """PathRefused is a ToolError, so the model sees it as a tool failure, and it names the path and reason."""
    assert issubclass(PathRefused, ToolError)
    exc = PathRefused("/x", "is outside the allowed directories")
    assert exc.path == "/x" and exc.reason == "is outside the allowed directories"
    assert "'/x'" in str(exc) and "outside" in str(exc)


def test_relative_path_resolves_against_the_root(roots: Roots, layout: dict[str, Path]) -> None:
    """A relative path is taken inside the root: existing files, subdirectories and new files alike."""
    root = layout["root"]
    assert roots.resolve("inside.txt") == root / "inside.txt"
    assert roots.resolve("sub/deep.txt") == root / "sub" / "deep.txt"
    assert roots.resolve("./sub/../inside.txt") == root / "inside.txt"
    assert roots.resolve("new.txt", write=True, must_exist=False) == root / "new.txt"
    assert roots.resolve(str(root)) == root


def test_relative_path_prefers_the_root_where_it_exists(layout: dict[str, Path]) -> None:
    """With two roots, a relative path resolves in the root that has it, else in the first root."""
    other = layout["base"] / "other"
    other.mkdir()
    (other / "only-here.txt").write_text("x")
    r = Roots([str(layout["root"]), str(other)])
    assert r.resolve("only-here.txt") == other / "only-here.txt"
    assert r.resolve("brand-new.txt", must_exist=False) == layout["root"] / "brand-new.txt"


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "..",
        "../root-evil/x.txt",
    ],
)
def test_dotdot_traversal_is_refused(roots: Roots, path: str) -> None:
    """A relative path climbing out of the root with .. is refused with PathRefused."""
    with pytest.raises(PathRefused, match="outside"):
        roots.resolve(path)
    with pytest.raises(PathRefused):
        roots.resolve(path, write=True, must_exist=False)


def test_absolute_dotdot_traversal_is_refused(roots: Roots, layout: dict[str, Path]) -> None:
    """An absolute path that starts in the root but climbs out with .. is refused."""
    with pytest.raises(PathRefused):
        roots.resolve(f"{layout['root']}/../outside/secret.txt")


@pytest.mark.parametrize("path", ["/etc/passwd", "/", "/nonexistent/file"])
def test_absolute_path_outside_is_refused(roots: Roots, path: str) -> None:
    """An absolute path outside every root is refused, whether or not it exists."""
    with pytest.raises(PathRefused, match="outside"):
        roots.resolve(path)
    with pytest.raises(PathRefused):
        roots.resolve(path, write=True, must_exist=False)


def test_outside_file_by_absolute_path_is_refused(roots: Roots, layout: dict[str, Path]) -> None:
    """An existing file outside the root, named by its absolute path, is refused."""
    with pytest.raises(PathRefused):
        roots.resolve(str(layout["outside"] / "secret.txt"))


def test_sibling_prefix_root_is_outside(roots: Roots, layout: dict[str, Path]) -> None:
    """<root>-evil shares the root's string prefix but is outside it: reads and writes there are refused."""
    evil = f"{layout['root']}-evil"
    assert evil == str(layout["evil"])
    with pytest.raises(PathRefused):
        roots.resolve(f"{evil}/x.txt")
    with pytest.raises(PathRefused):
        roots.resolve(evil)
    with pytest.raises(PathRefused):
        roots.resolve(f"{evil}/new.txt", write=True, must_exist=False)


def test_symlink_to_an_outside_file_is_refused(roots: Roots, layout: dict[str, Path]) -> None:
    """A symlink inside the root that points at a file outside it is refused for reading and writing."""
    link = layout["root"] / "link.txt"
    link.symlink_to(layout["outside"] / "secret.txt")
    with pytest.raises(PathRefused, match="symlink"):
        roots.resolve("link.txt")
    with pytest.raises(PathRefused):
        roots.resolve(str(link), write=True, must_exist=False)


def test_symlink_to_an_outside_directory_is_refused(roots: Roots, layout: dict[str, Path]) -> None:
    """A symlinked directory pointing outside refuses the directory, files in it, and new files in it."""
    (layout["root"] / "dlink").symlink_to(layout["outside"], target_is_directory=True)
    with pytest.raises(PathRefused):
        roots.resolve("dlink")
    with pytest.raises(PathRefused):
        roots.resolve("dlink/secret.txt")
    with pytest.raises(PathRefused):
        roots.resolve("dlink/new.txt", write=True, must_exist=False)


def test_symlink_inside_the_root_is_allowed(roots: Roots, layout: dict[str, Path]) -> None:
    """A symlink whose target is inside the root resolves to the target (the check is not over-strict)."""
    (layout["root"] / "alias.txt").symlink_to(layout["root"] / "sub" / "deep.txt")
    assert roots.resolve("alias.txt") == layout["root"] / "sub" / "deep.txt"


@pytest.mark.parametrize("target", ["missing-inside.txt", "../outside/missing.txt"])
def test_dangling_symlink_is_refused_for_creation(roots: Roots, layout: dict[str, Path], target: str) -> None:
    """A dangling symlink is never a way to create a file, wherever it points."""
    link = layout["root"] / "dangling"
    link.symlink_to(target)
    with pytest.raises(PathRefused, match="symlink"):
        roots.resolve("dangling", write=True, must_exist=False)
    assert not (layout["root"] / "missing-inside.txt").exists()


@pytest.mark.parametrize("path", ["a\x00b", "inside.txt\x00.png", "\x00"])
def test_nul_byte_is_refused(roots: Roots, path: str) -> None:
    """A path containing a NUL byte is refused with PathRefused (not a ValueError from the OS layer)."""
    with pytest.raises(PathRefused, match="NUL") as err:
        roots.resolve(path)
    assert "\x00" not in str(err.value)
    with pytest.raises(PathRefused):
        roots.resolve(path, write=True, must_exist=False)


def test_empty_path_is_refused(roots: Roots) -> None:
    """An empty path is refused with PathRefused."""
    with pytest.raises(PathRefused):
        roots.resolve("")


def test_new_file_in_a_read_only_root_is_refused_for_writing(layout: dict[str, Path]) -> None:
    """In a DIR:ro root, reads work but a new or existing file is refused for write=True."""
    ro = Roots([f"{layout['root']}:ro"])
    assert not ro.any_writable
    assert ro.resolve("inside.txt") == layout["root"] / "inside.txt"
    assert ro.resolve("new.txt", must_exist=False) == layout["root"] / "new.txt"  # reading a path is fine
    with pytest.raises(PathRefused, match="read-only"):
        ro.resolve("new.txt", write=True, must_exist=False)
    with pytest.raises(PathRefused, match="read-only"):
        ro.resolve("inside.txt", write=True)


def test_read_only_subtree_inside_a_writable_root_stays_read_only(layout: dict[str, Path]) -> None:
    """The longest matching root decides: a DIR:ro inside a read-write root refuses writes under it only."""
    r = Roots([str(layout["root"]), f"{layout['root'] / 'sub'}:ro"])
    assert r.resolve("new.txt", write=True, must_exist=False) == layout["root"] / "new.txt"
    with pytest.raises(PathRefused, match="read-only"):
        r.resolve("sub/new.txt", write=True, must_exist=False)


def test_missing_file_is_a_tool_error_not_path_refused(roots: Roots) -> None:
    """A path inside the root that does not exist is a plain ToolError when it must exist."""
    with pytest.raises(ToolError, match="no such file") as err:
        roots.resolve("nope.txt")
    assert not isinstance(err.value, PathRefused)
    with pytest.raises(ToolError, match="parent directory does not exist"):
        roots.resolve("nodir/new.txt", write=True, must_exist=False)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("a" * 300, id="component over NAME_MAX"),
        pytest.param("a" * 5000, id="component over PATH_MAX"),
        pytest.param("/".join(["b" * 200] * 30), id="many components over PATH_MAX"),
        pytest.param("sub/" + "c" * 300 + "/x.txt", id="long component in the middle"),
    ],
)
@pytest.mark.parametrize(("write", "must_exist"), [(False, True), (True, False)])
def test_very_long_path_is_a_tool_error_not_an_os_error(
    roots: Roots, path: str, write: bool, must_exist: bool
) -> None:
    """An over-long path is refused with PathRefused or ToolError, never an unhandled OSError."""
    with pytest.raises(ToolError) as err:
        roots.resolve(path, write=write, must_exist=must_exist)
    assert not isinstance(err.value, OSError)
    if isinstance(err.value, PathRefused):
        assert len(str(err.value)) < 400  # PathRefused shows at most 200 characters of the path


def test_home_directory_is_expanded(layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """~ expands to $HOME: inside the root when HOME is the root, refused when HOME is elsewhere."""
    monkeypatch.setenv("HOME", str(layout["root"]))
    assert Roots([str(layout["root"])]).resolve("~/inside.txt") == layout["root"] / "inside.txt"
    monkeypatch.setenv("HOME", str(layout["outside"]))
    with pytest.raises(PathRefused):
        Roots([str(layout["root"])]).resolve("~/secret.txt")


def test_root_given_through_a_symlink_accepts_both_spellings(layout: dict[str, Path]) -> None:
    """A root configured via a symlink accepts paths spelled through the link or through the real path."""
    alias = layout["base"] / "alias"
    alias.symlink_to(layout["root"], target_is_directory=True)
    r = Roots([str(alias)])
    assert r.resolve(str(alias / "inside.txt")) == layout["root"] / "inside.txt"
    assert r.resolve(str(layout["root"] / "inside.txt")) == layout["root"] / "inside.txt"


def test_roots_refuse_a_missing_directory(layout: dict[str, Path]) -> None:
    """Roots with no usable directory raises ValueError; unusable ones next to a good one are reported."""
    with pytest.raises(ValueError, match="no usable fs root"):
        Roots([str(layout["base"] / "missing")])
    r = Roots([str(layout["base"] / "missing"), str(layout["root"])])
    assert [x.path for x in r.roots] == [str(layout["root"])]
    assert r.problems and "missing" in r.problems[0]


@pytest.mark.parametrize(
    ("spec", "expected"), [("/d", ("/d", True)), ("/d:ro", ("/d", False)), ("/d:rw", ("/d", True))]
)
def test_parse_root(spec: str, expected: tuple[str, bool]) -> None:
    """DIR is read-write, DIR:ro read-only, DIR:rw read-write."""
    assert parse_root(spec) == expected


def test_refusal_does_not_touch_the_filesystem(roots: Roots, layout: dict[str, Path]) -> None:
    """Resolving (even refused) paths creates nothing: resolve only checks."""
    before = sorted(os.listdir(layout["base"])), sorted(os.listdir(layout["root"]))
    for p in ("../outside/new.txt", "new.txt", "sub/x/y.txt"):
        try:
            roots.resolve(p, write=True, must_exist=False)
        except ToolError:
            pass
    assert (sorted(os.listdir(layout["base"])), sorted(os.listdir(layout["root"]))) == before
