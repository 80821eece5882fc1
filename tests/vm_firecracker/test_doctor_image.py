"""The doctor's findings and the image build plan (which cannot run here: no internet)."""

from __future__ import annotations

import json
from pathlib import Path

from blacksmith_mini.vm.firecracker import doctor, image, image_runner, ssh
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_firecracker.py"


def test_doctor_reports_each_check_with_a_fix(tmp_path: Path) -> None:
    s = FirecrackerSettings(
        firecracker_bin=FAKE,
        kernel_path=tmp_path / "missing-vmlinux",
        rootfs_path=tmp_path / "rootfs.ext4",
        min_free_disk_mib=0,
    )
    (tmp_path / "rootfs.ext4").write_bytes(b"r")
    checks = {c.name: c for c in doctor.run_checks(s, data_dir=tmp_path)}
    assert list(checks) == [
        "kvm",
        "firecracker",
        "kernel",
        "rootfs",
        "tap",
        "nftables",
        "ip_forward",
        "disk",
    ]
    assert checks["firecracker"].ok and "v1.16.1" in checks["firecracker"].detail
    assert not checks["kernel"].ok and "image build" in (checks["kernel"].fix or "")
    assert checks["rootfs"].ok and checks["disk"].ok
    for check in checks.values():
        assert check.ok or check.fix, check


def test_doctor_flags_wrong_versions_and_jailer_needs(tmp_path: Path) -> None:
    fake = tmp_path / "firecracker"
    fake.write_text("#!/bin/sh\necho 'Firecracker v1.4.0'\n")
    fake.chmod(0o755)
    bad = doctor.check_binary("firecracker", fake)
    assert not bad.ok and "v1.4.0" in bad.detail and "1.16" in (bad.fix or "")
    missing = doctor.check_binary("jailer", tmp_path / "nope")
    assert not missing.ok and "jailer_bin" in (missing.fix or "")
    cg = doctor.check_cgroup_v2("bm", root=tmp_path)
    assert not cg.ok and "unified" in (cg.fix or "")
    assert not doctor.check_kvm(tmp_path / "kvm").ok


def test_image_plan_is_argument_lists_in_order(tmp_path: Path) -> None:
    steps = image.plan_build(output_dir=tmp_path, runner_version="2.335.1", jobs=4)
    whats = [s.what for s in steps]
    assert whats.index("build vmlinux") < whats.index("install vmlinux")
    assert (
        whats.index("debootstrap")
        < whats.index("guest agent")
        < whats.index("no per-VM identity in the image")
        < whats.index("ext4 filesystem from the tree")
        < whats.index("install rootfs")
    )
    for step in steps:
        assert isinstance(step.argv, tuple) and all(isinstance(a, str) for a in step.argv)
        assert step.argv[0] not in ("sh", "bash", "/bin/sh")
        assert step.argv[0] != "mount" or step.argv[-1].endswith("/proc")  # no loop mount
    argv = {s.what: s.argv for s in steps}
    assert image_runner.runner_url("2.335.1") in argv["runner tarball"]
    assert argv["build vmlinux"] == ("make", "-j4", "vmlinux")
    assert "blacksmith-guest.config" in argv["merge our config fragment"][-1]
    assert (
        "docker.io" in argv["debootstrap"][3]
        and "--components=main,universe" in argv["debootstrap"]
    )
    assert argv["debootstrap"][-3:] == (
        "noble",
        str(tmp_path / "build/rootfs"),
        image.DISTRIBUTIONS["ubuntu"][0],
    )
    agent_src = Path(argv["guest agent"][3])
    assert agent_src.is_file() and agent_src.name == "blacksmith-agent.py"
    assert Path(argv["agent unit"][3]).is_file()
    assert "-d" in argv["ext4 filesystem from the tree"]


def test_image_never_bakes_in_the_build_hosts_identity(tmp_path: Path) -> None:
    """debootstrap copies the build host's resolv.conf and hostname, and openssh-server makes
    host keys: all must go, and the machine-id be left empty (the agent makes them per VM)."""
    steps = image.plan_build(output_dir=tmp_path, runner_version="2.335.1", skip_kernel=True)
    argv = {s.what: s.argv for s in steps}
    tree = tmp_path / "build/rootfs"
    removed = argv["no per-VM identity in the image"]
    for name in ("etc/resolv.conf", "etc/hostname", "var/lib/systemd/random-seed"):
        assert str(tree / name) in removed
    assert str(tree / "etc/ssh/ssh_host_*") in argv["no ssh host keys in the image"]
    assert argv["empty machine-id"] == ("truncate", "-s", "0", str(tree / "etc/machine-id"))
    whats = [s.what for s in steps]
    assert whats.index("no per-VM identity in the image") > whats.index("clean apt")
    assert not any("vmlinux" in s.what or "kernel" in s.what for s in steps)


def test_image_plan_for_debian_with_local_inputs(tmp_path: Path) -> None:
    tarball, kernel = tmp_path / "runner.tar.gz", tmp_path / "vmlinux"
    steps = image.plan_build(
        output_dir=tmp_path / "out",
        runner_version="2.999.0",
        distribution="debian",
        packages=("python3", "sudo"),
        runner_tarball=tarball,
        runner_dependencies=False,
        kernel=kernel,
        keep_tree=True,
        debootstrap_cache=tmp_path / "debs",
    )
    argv = {s.what: s.argv for s in steps}
    texts = {s.what: s.stdin_text for s in steps}
    assert argv["debootstrap"][-3:] == (
        "bookworm",
        str(tmp_path / "out/build/rootfs"),
        "http://deb.debian.org/debian",
    )
    assert "--include=python3,sudo" in argv["debootstrap"]
    assert f"--cache-dir={tmp_path / 'debs'}" in argv["debootstrap"]
    assert "runner tarball" not in argv and str(tarball) in argv["unpack runner"]
    assert "runner dependencies" not in argv and "mount /proc" not in argv
    assert argv["install the given vmlinux"][-2:] == (str(kernel), str(tmp_path / "out/vmlinux"))
    assert "remove the tree" not in argv and "enable docker" not in argv
    assert texts["runner version"] == "2.999.0\n"
    manifest = json.loads(texts["manifest"] or "")
    assert manifest["runner_version"] == "2.999.0" and manifest["suite"] == "bookworm"
    assert argv["manifest"] == ("tee", str(image.manifest_path(tmp_path / "out/rootfs.ext4")))
    assert image.manifest_path(Path("/x/rootfs.ext4")) == Path("/x/rootfs.ext4.manifest.json")


def test_ssh_argv(tmp_path: Path) -> None:
    s = FirecrackerSettings(ssh_private_key_path=tmp_path / "id_ed25519")
    argv = ssh.ssh_argv(settings=s, guest_ip="172.16.0.2")
    assert argv[0] == "ssh" and argv[-1] == "runner@172.16.0.2"
    assert ["-i", str(tmp_path / "id_ed25519")] == argv[argv.index("-i") : argv.index("-i") + 2]


def test_jailer_plan(tmp_path: Path) -> None:
    from blacksmith_mini.vm.firecracker import jailer

    s = FirecrackerSettings(jailer_bin=Path("/usr/local/bin/jailer"))
    plan = jailer.plan(
        s,
        instance_id="bm3xr3",
        slot=5,
        vcpus=2,
        memory_mib=1024,
        netns_path=Path("/var/run/netns/bmtap_bm3xr3"),
    )
    argv = list(plan.argv)
    assert argv[:3] == ["/usr/local/bin/jailer", "--id", "bm3xr3"]
    assert argv[argv.index("--uid") + 1] == "200005" and argv[argv.index("--gid") + 1] == "200005"
    assert argv[argv.index("--cgroup-version") + 1] == "2"
    assert "cpu.max=200000 100000" in argv and f"memory.max={(1024 + 64) * 2**20}" in argv
    assert argv[argv.index("--netns") + 1] == "/var/run/netns/bmtap_bm3xr3"
    assert "--daemonize" not in argv and "--new-pid-ns" not in argv
    assert argv[-3:] == ["--", "--api-sock", "/run/firecracker.socket"]
    assert plan.root == Path("/srv/jailer/firecracker/bm3xr3/root")
    assert plan.host_path("/run/firecracker.socket") == plan.root / "run/firecracker.socket"
