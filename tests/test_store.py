"""The store on its own: transactions, names, links, map growth, locking, fsck."""

import errno
import os

import pytest

from sdfs.fsck import check
from sdfs.store import RENAME_EXCHANGE, RENAME_NOREPLACE, FsError, Store, StoreLockedError


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s") as s:
        yield s


def names(store, path="/"):
    return sorted(name for name, _ in store.listdir(path))


def test_tree_operations_and_link_counts(store):
    store.create("/a", "dir", 0o755, 0, 0)
    store.create("/a/b", "dir", 0o755, 0, 0)
    f = store.create("/a/f", "file", 0o644, 1000, 1000)
    store.link("/a/f", "/g")
    assert store.get(f.ino).nlink == 2 and store.resolve("/").nlink == 3 and store.resolve("/a").nlink == 3
    with pytest.raises(FsError) as err:
        store.unlink("/a", directory=True)
    assert err.value.errno == errno.ENOTEMPTY
    assert store.unlink("/a/f").nlink == 1
    assert store.resolve("/g").ino == f.ino
    with pytest.raises(FsError) as err:
        store.rename("/a", "/a/b/c")
    assert err.value.errno == errno.EINVAL
    store.rename("/a/b", "/b")
    assert store.resolve("/a").nlink == 2 and store.resolve("/").nlink == 4
    assert check(store).clean


def test_rename_replace_noreplace_exchange(store):
    x = store.create("/x", "file", 0o644, 0, 0)
    y = store.create("/y", "file", 0o644, 0, 0)
    with pytest.raises(FsError) as err:
        store.rename("/x", "/y", RENAME_NOREPLACE)
    assert err.value.errno == errno.EEXIST
    store.rename("/x", "/y", RENAME_EXCHANGE)
    assert store.resolve("/x").ino == y.ino and store.resolve("/y").ino == x.ino
    replaced = store.rename("/x", "/y")
    assert replaced.ino == x.ino and replaced.nlink == 0 and names(store) == ["y"]
    store.purge(replaced.ino)
    assert check(store).clean


def test_content_commit_and_encode_swap_are_atomic(store):
    f = store.create("/p.png", "file", 0o644, 0, 0)
    inode = store.set_content(f.ino, b"original", 1234, {"width": 10, "height": 10, "channels": 3}, queue=True)
    assert store.queued() == [(f.ino, inode.generation)]
    # a rewrite while the encoder works: the stale result must not be swapped in
    newer = store.set_content(f.ino, b"newer", 1234, {"width": 10, "height": 10, "channels": 3}, queue=True)
    assert not store.finish_encode(f.ino, inode.generation, "latent", b"stale latent", keep_original=False)
    assert store.finish_encode(f.ino, newer.generation, "latent", b"latent", keep_original=False)
    assert store.get(f.ino).content == "latent" and store.queue_length() == 0
    assert store.blob(f.ino, b"o") is None and store.blob(f.ino, b"l") == b"latent"


def test_full_map_grows(tmp_path):
    with Store(tmp_path / "small", map_size=1 << 20) as store:
        for i in range(6):
            f = store.create(f"/f{i}", "file", 0o644, 0, 0)
            store.set_content(f.ino, os.urandom(1 << 20), 1 << 20, None)
        assert store.env.info()["map_size"] > 4 << 20
        assert len(store.blob(f.ino, b"o")) == 1 << 20


def test_second_opener_is_refused(tmp_path):
    with Store(tmp_path / "s"):
        with pytest.raises(StoreLockedError, match="in use"):
            Store(tmp_path / "s")


def test_fsck_finds_and_repairs_damage(store):
    f = store.create("/f", "file", 0o644, 0, 0)
    store.set_content(f.ino, b"12345", 5, None)
    store.update(f.ino, size=99, nlink=3)
    store.delete_key("dirents", store.resolve("/").ino.to_bytes(8, "big") + b"f")
    report = check(store)
    assert not report.clean and any("orphan" in p for p in report.problems)
    check(store, repair=True)
    assert check(store).clean
    assert names(store, "/lost+found") == [f"inode-{f.ino}"]
    assert store.resolve(f"/lost+found/inode-{f.ino}").size == 5
