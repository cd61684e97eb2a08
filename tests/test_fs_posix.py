"""POSIX behaviour of a real mount: links, xattrs, sparse writes, truncate, renameat2 flags, statfs."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess

import pytest

from tests.mountutil import mounted, stats

AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def renameat2(old, new, flags) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@pytest.fixture(scope="module")
def mnt(tmp_path_factory):
    base = tmp_path_factory.mktemp("posix")
    with mounted(base / "store", base / "mnt") as mountpoint:
        yield mountpoint


def test_symlinks_and_hard_links(mnt):
    (mnt / "target.txt").write_text("hello")
    os.symlink("target.txt", mnt / "link")
    assert os.readlink(mnt / "link") == "target.txt" and (mnt / "link").read_text() == "hello"
    os.link(mnt / "target.txt", mnt / "hard.txt")
    assert os.stat(mnt / "target.txt").st_nlink == 2
    assert os.stat(mnt / "hard.txt").st_ino == os.stat(mnt / "target.txt").st_ino
    os.unlink(mnt / "target.txt")
    assert (mnt / "hard.txt").read_text() == "hello" and os.stat(mnt / "hard.txt").st_nlink == 1


def test_sparse_writes_truncate_and_offsets(mnt):
    path = mnt / "sparse.bin"
    with open(path, "wb") as f:
        f.seek(1 << 20)
        f.write(b"end")
    data = path.read_bytes()
    assert len(data) == (1 << 20) + 3 and data[:10] == b"\0" * 10 and data.endswith(b"end")
    os.truncate(path, 5)
    assert path.read_bytes() == b"\0" * 5
    with open(path, "r+b") as f:
        f.seek(2)
        f.write(b"XY")
    assert path.read_bytes() == b"\0\0XY\0"
    with open(path, "ab") as f:
        f.write(b"++")
    assert path.read_bytes() == b"\0\0XY\0++"
    with open(path, "wb"):
        pass
    assert path.read_bytes() == b""


def test_user_xattrs_and_read_only_sdfs_xattrs(mnt):
    path = mnt / "tagged.txt"
    path.write_text("x")
    os.setxattr(path, "user.comment", b"holiday")
    assert os.getxattr(path, "user.comment") == b"holiday"
    assert "user.comment" in os.listxattr(path) and "user.sdfs.codec" in os.listxattr(path)
    with pytest.raises(OSError) as err:
        os.setxattr(path, "user.comment", b"again", os.XATTR_CREATE)
    assert err.value.errno == errno.EEXIST
    with pytest.raises(OSError) as err:
        os.setxattr(path, "user.sdfs.codec", b"forged")
    assert err.value.errno == errno.EPERM
    assert os.getxattr(path, "user.sdfs.stored_bytes") == b"1"
    os.removexattr(path, "user.comment")
    with pytest.raises(OSError) as err:
        os.getxattr(path, "user.comment")
    assert err.value.errno == errno.ENODATA


@pytest.mark.parametrize("name", ["security.selinux", "system.posix_acl_access", "trusted.note"])
def test_namespaces_other_than_user_are_unsupported(mnt, name):
    """ENOTSUP, not ENODATA: `ls -l` then stops asking every file for labels and ACLs (one request each)."""
    path = mnt / "plain.txt"
    path.write_text("x")
    calls = [lambda: os.getxattr(path, name)]
    if not name.startswith("system."):  # the kernel checks an ACL's format before asking us
        calls += [lambda: os.setxattr(path, name, b"v"), lambda: os.removexattr(path, name)]
    for call in calls:
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == errno.ENOTSUP
    subprocess.run(["cp", "-a", str(path), str(mnt / "copy.txt")], check=True)  # cp -a copes with ENOTSUP
    assert (mnt / "copy.txt").read_text() == "x"


def test_rename_flags_and_replacement(mnt):
    (mnt / "a").write_text("A")
    (mnt / "b").write_text("B")
    with pytest.raises(OSError) as err:
        renameat2(mnt / "a", mnt / "b", RENAME_NOREPLACE)
    assert err.value.errno == errno.EEXIST
    renameat2(mnt / "a", mnt / "b", RENAME_EXCHANGE)
    assert (mnt / "a").read_text() == "B" and (mnt / "b").read_text() == "A"
    os.rename(mnt / "a", mnt / "b")
    assert not (mnt / "a").exists() and (mnt / "b").read_text() == "B"
    os.makedirs(mnt / "d1" / "x")
    with pytest.raises(OSError) as err:
        os.rename(mnt / "d1", mnt / "d1" / "x" / "inside")
    assert err.value.errno == errno.EINVAL


def test_modes_times_and_statfs(mnt):
    path = mnt / "m.txt"
    path.write_text("m")
    os.chmod(path, 0o600)
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.utime(path, ns=(1_000_000_001, 2_000_000_002))
    st = os.stat(path)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_001, 2_000_000_002)
    fs = os.statvfs(mnt)
    assert fs.f_blocks > 0 and 0 < fs.f_bavail <= fs.f_blocks and fs.f_namemax == 255
    with pytest.raises(OSError) as err:
        os.rmdir(mnt / "d1")
    assert err.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as err:
        (mnt / ("n" * 256)).write_text("too long")
    assert err.value.errno == errno.ENAMETOOLONG


def test_relative_store_and_mountpoint(tmp_path):
    """libfuse may chdir; a mount given relative paths must keep working (statfs, spill files, logs)."""
    import subprocess
    import sys

    (tmp_path / "mnt").mkdir()
    made = subprocess.run([sys.executable, "-m", "sdfs.cli", "mount", "store", "mnt"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    try:
        (tmp_path / "mnt" / "f.txt").write_text("relative")
        assert (tmp_path / "mnt" / "f.txt").read_text() == "relative"
        assert os.statvfs(tmp_path / "mnt").f_blocks > 0
        assert "Traceback" not in (tmp_path / "store" / "sdfs.log").read_text()
    finally:
        subprocess.run([sys.executable, "-m", "sdfs.cli", "umount", "mnt"], cwd=tmp_path, check=False)
        if os.path.ismount(tmp_path / "mnt"):
            subprocess.run(["fusermount3", "-uz", str(tmp_path / "mnt")], check=False)


def test_listing_pages_carry_attributes_so_ls_l_needs_no_lookups(tmp_path):
    """1500 entries take several READDIRPLUS pages; each entry's attributes come with the listing."""
    names = {f"n{i:04d}.txt" for i in range(1500)}
    with mounted(tmp_path / "store", tmp_path / "mnt") as mnt:
        (mnt / "many").mkdir()
        for name in names:
            (mnt / "many" / name).write_bytes(b"x" * 7)
    with mounted(tmp_path / "store", tmp_path / "mnt") as mnt:  # a fresh kernel cache
        before = stats(mnt)["getattrs"]
        listing = subprocess.run(["ls", "-la", str(mnt / "many")], capture_output=True, text=True, check=True)
        served = stats(mnt)["getattrs"] - before
        rows = [line.split() for line in listing.stdout.splitlines()[1:]]
        assert sorted(row[-1] for row in rows) == sorted(names | {".", ".."})  # each exactly once
        assert all(row[4] == "7" for row in rows if row[-1].endswith(".txt"))
        assert served < 20, f"{served} getattr requests for ls -la of {len(names)} files"
        with os.scandir(mnt / "many") as entries:
            assert all(entry.inode() == entry.stat(follow_symlinks=False).st_ino for entry in entries)


def test_a_listing_is_one_snapshot_while_the_directory_changes(mnt):
    folder = mnt / "changing"
    folder.mkdir()
    for i in range(1200):
        (folder / f"old{i:04d}").write_bytes(b"")
    seen = []
    with os.scandir(folder) as entries:
        for i, entry in enumerate(entries):
            seen.append(entry.name)
            if i == 10:
                for j in range(300):
                    (folder / f"new{j:04d}").write_bytes(b"")
                os.unlink(folder / "old1199")
    assert len(seen) == len(set(seen)), "an entry was listed twice"
    assert {f"old{i:04d}" for i in range(1199)} <= set(seen), "an entry that stayed was skipped"
