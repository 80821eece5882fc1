"""Per-VM copy-on-write disks: strategies and the free-space check."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from blacksmith_mini.vm.firecracker import disks


def make_base(path: Path) -> Path:
    with path.open("wb") as f:
        f.write(b"head" * 1000)
        f.seek(16 * 2**20)
        f.write(b"middle")
        f.truncate(48 * 2**20)
    return path


def test_sparse_copy_keeps_content_and_holes(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base.ext4")
    dst = tmp_path / "vm.ext4"
    disks.SparseCopyStrategy().clone(src=base, dst=dst)
    assert dst.read_bytes() == base.read_bytes()
    assert dst.stat().st_blocks * 512 < 2 * 2**20  # still sparse
    with pytest.raises(FileExistsError):
        disks.SparseCopyStrategy().clone(src=base, dst=dst)


def test_reflink_refused_with_the_fix_where_unsupported(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base.ext4")
    if disks.try_reflink(src=base, dst=tmp_path / "probe"):
        pytest.skip("this filesystem supports reflinks")
    with pytest.raises(disks.DiskError, match='rootfs_strategy = "sparse-copy"'):
        disks.ReflinkStrategy().clone(src=base, dst=tmp_path / "vm.ext4")
    assert not (tmp_path / "vm.ext4").exists()


def test_auto_falls_back_to_sparse_copy(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base.ext4")
    auto = disks.AutoStrategy()
    auto.clone(src=base, dst=tmp_path / "vm.ext4")
    assert auto.last_used in ("reflink", "sparse-copy")
    assert (tmp_path / "vm.ext4").read_bytes() == base.read_bytes()


def test_reflink_on_btrfs(tmp_path: Path) -> None:
    """Real FICLONE on a loop-mounted btrfs, where the host allows it."""
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("mkfs.btrfs not installed")
    image, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["truncate", "-s", "200M", str(image)], check=True)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
    if subprocess.run(
        ["mount", "-o", "loop", str(image), str(mnt)], capture_output=True
    ).returncode:
        pytest.skip("cannot loop-mount here")
    try:
        base = make_base(mnt / "base.ext4")
        disks.ReflinkStrategy().clone(src=base, dst=mnt / "vm.ext4")
        assert (mnt / "vm.ext4").read_bytes() == base.read_bytes()
        auto = disks.AutoStrategy()
        auto.clone(src=base, dst=mnt / "vm2.ext4")
        assert auto.last_used == "reflink"
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_space_check_names_the_fix(tmp_path: Path) -> None:
    disks.check_free_space(directory=tmp_path, needed_bytes=0, min_free_mib=1)
    with pytest.raises(disks.DiskError, match="min_free_disk_mib") as err:
        disks.check_free_space(directory=tmp_path, needed_bytes=0, min_free_mib=10**9)
    assert "MiB free" in str(err.value)


def test_strategy_by_name() -> None:
    assert disks.strategy("reflink").name == "reflink"
    assert disks.strategy("sparse-copy").name == "sparse-copy"
    with pytest.raises(ValueError):
        disks.strategy("zfs")


def make_dense(path: Path, *, mib: int) -> Path:
    """A file of real (non-zero) data: a sparse copy has to copy every byte of it."""
    block = bytes(range(1, 256)) * (2**20 // 255 + 1)
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(block[: 2**20])
    return path


@pytest.mark.anyio
async def test_clone_off_loop_copies_under_a_temporary_name(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base.ext4")
    dst = tmp_path / "vm.ext4"
    used = await disks.clone_off_loop(disks.SparseCopyStrategy(), src=base, dst=dst)
    assert used == "sparse-copy"
    assert dst.read_bytes() == base.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.ext4", "vm.ext4"]
    with pytest.raises(disks.DiskError, match="already exists"):
        await disks.clone_off_loop(disks.SparseCopyStrategy(), src=base, dst=dst)


@pytest.mark.anyio
async def test_a_cancelled_clone_leaves_no_half_copied_disk(tmp_path: Path) -> None:
    base = make_dense(tmp_path / "base.ext4", mib=384)
    dst = tmp_path / "vm.ext4"
    partial = disks.partial_path(dst)
    lags: list[float] = []

    async def heartbeat() -> None:
        while True:
            before = time.monotonic()
            await anyio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat)
        cancelled_at: list[float] = []
        with anyio.CancelScope() as scope:
            tg.start_soon(_cancel_when, scope, partial, cancelled_at)
            await disks.clone_off_loop(disks.SparseCopyStrategy(), src=base, dst=dst)
        returned_at = time.monotonic()
        tg.cancel_scope.cancel()
    assert scope.cancelled_caught, "the copy finished before it could be cancelled"
    assert returned_at - cancelled_at[0] < 1.0, "cancellation must not wait for the copy"
    assert not dst.exists() and not partial.exists()
    assert lags and max(lags) < 0.2, f"the event loop stalled for {max(lags):.3f} s"


async def _cancel_when(scope: anyio.CancelScope, path: Path, when: list[float]) -> None:
    with anyio.fail_after(10):
        while not path.exists() or path.stat().st_size < 64 * 2**20:
            await anyio.sleep(0.002)
    when.append(time.monotonic())
    scope.cancel()


def test_remove_also_removes_a_partial_copy(tmp_path: Path) -> None:
    dst = tmp_path / "vm.ext4"
    disks.partial_path(dst).write_bytes(b"half")
    assert disks.remove(dst)
    assert list(tmp_path.iterdir()) == []
