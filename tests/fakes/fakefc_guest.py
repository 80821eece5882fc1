"""The fake Firecracker's booted "guest": its console, the real guest agent, its exit.

On ``InstanceStart`` :class:`Guest` prints kernel-ish lines, serves MMDS and starts the REAL
guest agent (``images/guest/blacksmith-agent.py`` or ``$FAKE_FC_AGENT``) in the VMM's process
group, dying with the thread that started it. When the agent exits the guest "reboots": the
whole fake exits 0 if the kernel command line has ``reboot=k``, as Firecracker does.
``SendCtrlAltDel`` SIGTERMs the agent (SIGKILL 3 s later). In unkind mode (root, see
:func:`fakefc_runner.unkind_guest`) the agent runs in its own network namespace
(:mod:`fakefc_netns`) and the runner as an unprivileged user (:mod:`fakefc_runner`). Stdlib only.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fakefc_knobs import REPO, console, knob
from fakefc_mmds import Tokens, make_mmds_handler, serve_mmds
from fakefc_netns import MMDS_IP, enter_guest_network
from fakefc_runner import (
    GUEST_RUNNER_DIR,
    ensure_runner_user,
    mount_runner_dir,
    simulator_runner_dir,
    unkind_guest,
)

if TYPE_CHECKING:
    from fakefc_vmm import Vmm

SHUTDOWN_TIMEOUT = 3.0


def crash_soon() -> None:
    """``FAKE_FC_CRASH=after-boot``: the VMM dies by SIGKILL just after booting."""
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


def reboot_soon() -> None:
    """A guest without an agent reboots at once: the VMM exits 0."""
    time.sleep(0.05)
    os._exit(0)


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG: the "guest" never outlives its VMM."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


class Guest:
    """The booted "guest": an MMDS endpoint and the real guest agent.

    Unkind mode (:func:`unkind_guest`), like a real guest: the thread that boots it enters a
    new network namespace (:func:`enter_guest_network`), binds MMDS to 169.254.169.254:80
    there, and forks the agent, which inherits the namespace; the runner runs as the
    unprivileged runner user, its directory mounted at /mnt/runner.
    """

    def __init__(self, vmm: Vmm) -> None:
        self.vmm = vmm
        self.tokens = Tokens()
        self.process: subprocess.Popen[bytes] | None = None
        self.mmds_server: http.server.ThreadingHTTPServer | None = None
        # The "guest's disk": beside the API socket, i.e. in the VM's state directory, which
        # the driver removes on release (so nothing is left in /tmp, even after a SIGKILL).
        self.scratch = str(Path(vmm.args.api_sock).resolve().parent)
        self.unkind = unkind_guest()
        self.runner_dir = ""
        self.booted = False

    def boot(self) -> None:
        self.booted = True
        boot_args = (self.vmm.boot_source or {}).get("boot_args", "")
        console("[    0.000000] Linux version 6.1.141 (fake-firecracker) #1 SMP")
        console(f"[    0.000000] Command line: {boot_args}")
        if knob("FAKE_FC_CRASH") == "after-boot":
            threading.Thread(target=crash_soon, daemon=True).start()
            return
        if knob("FAKE_FC_NO_GUEST"):
            return
        agent = os.environ.get("FAKE_FC_AGENT") or str(REPO / "images/guest/blacksmith-agent.py")
        name = os.environ.get("FAKE_FC_RUNNER_USER") or "bmrunner"
        user = ensure_runner_user(name) if self.unkind else None
        runner_dir = knob("FAKE_FC_RUNNER_DIR") or simulator_runner_dir(self.scratch, user=user)
        self.runner_dir = runner_dir
        env = dict(os.environ)
        env.update(
            BLACKSMITH_RUNNER_DIR=GUEST_RUNNER_DIR if user is not None else runner_dir,
            BLACKSMITH_RUNNER_USER=user.pw_name if user is not None else "",
            BLACKSMITH_SSH_DIR=os.environ.get("FAKE_FC_SSH_DIR")
            or tempfile.mkdtemp(prefix="fakefc-ssh-", dir=self.scratch),
            BLACKSMITH_ROOT=self._guest_root(),
            BLACKSMITH_REBOOT_COMMAND="none",
        )
        if self.unkind:
            env["BLACKSMITH_MMDS_ADDRESS"] = MMDS_IP
        else:
            self.mmds_server = serve_mmds(("127.0.0.1", 0), self._mmds_handler())
            env["BLACKSMITH_MMDS_ADDRESS"] = f"127.0.0.1:{self.mmds_server.server_address[1]}"
        console("[    0.125000] Run /sbin/init as init process")
        spawned = threading.Event()
        threading.Thread(
            target=self._run,
            args=([sys.executable, agent],),
            kwargs={"env": env, "spawned": spawned},
            daemon=True,
        ).start()
        spawned.wait(5)

    def _mmds_handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        return make_mmds_handler(self.vmm, tokens=self.tokens)

    def _guest_root(self) -> str:
        """The guest's ``/``, where the agent writes its identity files (``etc/...``)."""
        root = Path(self.scratch) / "guest-root"
        (root / "etc").mkdir(parents=True, exist_ok=True)
        return str(root)

    def _preexec(self, env: dict[str, str]) -> Callable[[], None]:
        """What the forked agent runs first: die with this thread; maybe mount the runner."""
        if not (self.unkind and env.get("BLACKSMITH_RUNNER_DIR") == GUEST_RUNNER_DIR):
            return die_with_parent
        runner_dir = self.runner_dir

        def preexec() -> None:
            die_with_parent()
            mount_runner_dir(runner_dir)

        return preexec

    def _run(self, argv: list[str], *, env: dict[str, str], spawned: threading.Event) -> None:
        if self.unkind:
            try:
                self.mmds_server = enter_guest_network(self._mmds_handler(), store=self.vmm.mmds)
            except (OSError, subprocess.CalledProcessError) as exc:
                console(f"[    0.200000] fake: no guest network namespace ({exc})")
                spawned.set()
                return
        delay = float(knob("FAKE_FC_BOOT_DELAY") or 0)
        if delay:
            spawned.set()
            time.sleep(delay)  # a slow boot: systemd has not reached the agent's unit yet
        # Same process group as the VMM: killing the VM's group kills the "guest" too. The
        # death signal follows this thread, which lives as long as the guest (a "vCPU thread").
        self.process = subprocess.Popen(argv, env=env, preexec_fn=self._preexec(env))
        spawned.set()
        self.process.wait()
        self._rebooted()

    def _rebooted(self) -> None:
        """The agent exited: the guest reboots; with ``reboot=k`` Firecracker exits 0."""
        boot_args = (self.vmm.boot_source or {}).get("boot_args", "")
        console("[   10.000000] reboot: Restarting system")
        if "reboot=k" in boot_args.split():
            self.vmm.log("Vmm is stopping.")
            sys.stdout.flush()
            os._exit(0)
        # without reboot=k an x86 guest reboot/poweroff leaves Firecracker running

    def freeze(self) -> None:
        """``PATCH /vm Paused``: the vCPUs stop (the agent is stopped where it is)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """``PATCH /vm Resumed``: a restored guest that never ran boots; a paused one goes on."""
        if not self.booted:
            self.boot()
        elif self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def ctrl_alt_del(self) -> None:
        if knob("FAKE_FC_IGNORE_CTRL_ALT_DEL"):
            console("[   10.000000] (guest ignores ctrl-alt-del)")
            return
        if self.process is None:  # FAKE_FC_NO_GUEST: the "guest" reboots at once
            threading.Thread(target=reboot_soon, daemon=True).start()
            return
        console("[   10.000000] systemd[1]: Received ctrl-alt-del, rebooting")
        try:
            self.process.send_signal(signal.SIGTERM)  # systemd stopping the agent's unit
        except ProcessLookupError:
            return
        threading.Thread(target=self._shutdown_timeout, daemon=True).start()

    def _shutdown_timeout(self) -> None:
        time.sleep(SHUTDOWN_TIMEOUT)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
