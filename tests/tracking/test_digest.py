from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import NotFound
from lockgate.tracking.digest import HashCache, manifest, manifest_digest, sha256_file, sha256_tree


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_file_digest_is_sha256_of_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"hello" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"hello" * 1000).hexdigest()


def test_tree_digest_ignores_timestamps_and_order_of_creation(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, {"x.csv": b"1,2\n", "sub/y.txt": b"y"})
    _write(b, {"sub/y.txt": b"y", "x.csv": b"1,2\n"})
    os.utime(b / "x.csv", (0, 0))
    assert sha256_tree(a) == sha256_tree(b)


@pytest.mark.parametrize(
    "change",
    [
        {"x.csv": b"1,3\n"},  # content
        {"z.csv": b""},  # a new empty file
    ],
)
def test_tree_digest_changes_with_content_or_files(tmp_path: Path, change: dict[str, bytes]) -> None:
    root = tmp_path / "d"
    _write(root, {"x.csv": b"1,2\n"})
    before = sha256_tree(root)
    _write(root, change)
    assert sha256_tree(root) != before


def test_rename_changes_digest(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _write(root, {"x.csv": b"1"})
    before = sha256_tree(root)
    (root / "x.csv").rename(root / "y.csv")
    assert sha256_tree(root) != before


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    root = tmp_path / "d"
    _write(root, {"x.csv": b"1"})
    (root / "link").symlink_to(outside)
    assert [e.path for e in manifest(root)] == ["x.csv"]


def test_missing_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        manifest(tmp_path / "nope")


@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.binary(max_size=64), max_size=6))
def test_manifest_digest_is_order_independent(files: dict[str, bytes]) -> None:
    from lockgate.tracking.digest import FileEntry

    entries = [FileEntry(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()]
    assert manifest_digest(entries) == manifest_digest(list(reversed(entries)))


def test_the_hash_cache_rehashes_changed_and_recently_written_files(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    cache = HashCache(racy_window_ns=0)  # remember even what was written just now
    first = cache.sha256(path)
    assert first == sha256_file(path) and path in cache._known
    assert cache.sha256(path) == first
    time.sleep(0.05)  # past the file system's timestamp granularity
    path.write_bytes(b"a,b\n1,3\n")  # same size, new content: the times move
    assert cache.sha256(path) == sha256_file(path) != first
    fresh = tmp_path / "fresh.csv"
    fresh.write_bytes(b"x")  # written just now: could change again within the clock's granularity
    default = HashCache()
    default.sha256(fresh)
    assert fresh not in default._known
    assert manifest(tmp_path, cache.sha256) == manifest(tmp_path)
