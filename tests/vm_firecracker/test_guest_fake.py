"""The fake Firecracker's guest is as unkind as a real one.

As root, the agent runs in the guest's own network namespace, reads MMDS at 169.254.169.254
there, and starts the runner as an unprivileged user that keeps its supplementary groups
(``docker``), in a runner directory it reaches although the VM's state directory is private.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver
from image.guest_support import ensure_runner_user, stand_in_run_sh

pytestmark = pytest.mark.anyio

EXTRA = "readlink /proc/self/ns/net > ./netns\nip -4 -o addr > ./addrs\npwd > ./pwd\n"


@pytest.fixture
def runner_user() -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root: the fake's guest runs its runner as an unprivileged user")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (`ip`) for the guest's network namespace")
    return ensure_runner_user().pw_name


async def test_runner_runs_unprivileged_with_docker_group_in_its_own_netns(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    runner_user: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = ensure_runner_user(runner_user)
    runner = tmp_path / "runner"  # pytest's tmp is 0700: closed to the runner user
    runner.mkdir()
    script = stand_in_run_sh().replace("#!/bin/sh\n", "#!/bin/sh\n" + EXTRA, 1)
    (runner / "run.sh").write_text(script)
    (runner / "run.sh").chmod(0o755)
    os.chown(runner, user.pw_uid, user.pw_gid)
    monkeypatch.setenv("FAKE_FC_RUNNER_DIR", str(runner))
    monkeypatch.setenv("FAKE_FC_RUNNER_USER", runner_user)
    await fc_driver.start(make_spec(31, name="bm-31-grp"))
    with anyio.fail_after(30):
        while (obs := (await fc_driver.observe())[31]).alive:
            await anyio.sleep(0.05)
    console = await fc_driver.console_tail(31)
    assert obs.runner_online and obs.job_started and obs.job_finished, console
    assert obs.exit_code == 0, console
    assert int((runner / "id").read_text()) == user.pw_uid != 0
    docker = subprocess.run(["getent", "group", "docker"], capture_output=True, text=True)
    docker_gid = int(docker.stdout.split(":")[2])
    assert docker_gid in {int(g) for g in (runner / "groups").read_text().split()}
    assert (runner / "netns").read_text() != os.readlink("/proc/self/ns/net") + "\n"
    assert "169.254.169.254/32" in (runner / "addrs").read_text()
    assert (runner / "pwd").read_text().strip() == "/mnt/runner"
    assert "blacksmith-agent: hostname: bm-31-grp" in console
