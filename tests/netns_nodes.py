"""Cluster nodes of this machine that are nodes of their own: each in network, PID, mount and UTS namespaces the
test makes, reached by `ray up` over SSH like any machine of Ray's `local` provider.

A bridge in this machine's namespace joins one veth pair per node; the test assigns every address (a private /24
that exists only on these links), so the nodes' traffic runs between these namespaces and this machine's end of
the bridge, nowhere else. Inside a node:

- its own PID namespace: `ray stop` there sees (and stops) only that node's processes, and killing the node's
  first process ends every process of the node at once, as pulling a machine's plug does;
- its own mount namespace: the login's home (``~``: the checkout `ray up` copies, ``~/.ray``, ``~/mlflow``) and
  Ray's ``/tmp/ray`` are the node's own folders bind-mounted over the same paths, ``/dev/shm`` a fresh tmpfs; the
  rest of the filesystem (the prebuilt virtualenv, the shared folder standing in for NFS) is this machine's;
- its own network namespace: its address on the bridge and its own loopback (the dashboard, job server and MLflow
  bind the head's 127.0.0.1, as on a real head);
- sshd on port 22 of its address, public-key login for one uid-0 user (the virtualenv lies under root's home).

Needs root, iproute2, util-linux's unshare, Debian's openssh-server and rsync.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from local_ssh import SSHD, _quote

USER = "rayxt-node"
SUBNET = "10.213.77"  # private, on the test's own links only
BRIDGE = "rxbr77"


@dataclass
class Node:
    name: str
    address: str
    netns: str
    folder: Path
    init: subprocess.Popen | None = None  # unshare, whose death takes the node's PID 1 with it (--kill-child)

    def alive(self) -> bool:
        return self.init is not None and self.init.poll() is None

    def kill(self) -> None:
        """The machine goes away: every process of the node at once (unshare's death kills the node's PID 1, and
        the kernel ends a PID namespace with its PID 1)."""
        if self.alive():
            os.kill(self.init.pid, signal.SIGKILL)
            self.init.wait(30)
        deadline = time.monotonic() + 20  # killed processes take a moment to be gone
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)

    def processes(self) -> list[str]:
        return subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout.split()


@dataclass
class Nodes:
    user: str
    key: Path
    home: Path  # the login's home path: each node mounts its own folder there
    client_address: str
    nodes: list[Node] = field(default_factory=list)

    def ssh(self, node: Node, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", f"{self.user}@{node.address}",
             f"bash --login -c {_quote(command)}"], capture_output=True, text=True, timeout=timeout)


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, a login of its own)"
    for tool in (SSHD, "ssh", "ssh-keygen", "rsync", "ip", "unshare", "useradd", "userdel"):
        if not shutil.which(tool) and not Path(tool).exists():
            return f"{tool} is not installed (apt-get install openssh-server openssh-client rsync iproute2)"
    probe = subprocess.run(["ip", "netns", "add", "rxprobe77"], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", "rxprobe77"], capture_output=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace here: {probe.stderr.strip()}"
    return None


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, text=True)


def start(folder: Path, names: tuple[str, ...] = ("head", "worker")) -> Nodes:
    """The nodes, each with its sshd answering; `stop` undoes everything. ``folder`` must lie outside /tmp/ray."""
    stop_leftovers()
    folder.mkdir(parents=True, exist_ok=True)
    key, host_key = folder / "user_key", folder / "host_key"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    home = folder / "home"  # a mount point: each node's own folder is mounted here inside the node
    home.mkdir()
    subprocess.run(["useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", str(home), "-s", "/bin/bash", "-p", "*", USER],
                   check=True)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    Path("/tmp/ray").mkdir(exist_ok=True)  # the mount point of each node's own Ray temp folder
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", f"{SUBNET}.1/24", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    nodes = Nodes(USER, key, home, f"{SUBNET}.1")
    try:
        for i, name in enumerate(names):
            node = Node(name, f"{SUBNET}.{i + 2}", f"rxn77-{name}", folder / "nodes" / name)
            nodes.nodes.append(node)
            _plug_in(node, i)
            _boot(node, key, host_key, home)
        for node in nodes.nodes:
            _wait_for_login(nodes, node)
    except BaseException:
        stop(nodes)
        raise
    return nodes


def _plug_in(node: Node, i: int) -> None:
    outside, inside = f"rxv77{i}a", f"rxv77{i}b"
    _run("ip", "netns", "add", node.netns)
    _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
    _run("ip", "link", "set", inside, "netns", node.netns)
    _run("ip", "link", "set", outside, "master", BRIDGE)
    _run("ip", "link", "set", outside, "up")
    for command in (("ip", "addr", "add", f"{node.address}/24", "dev", inside), ("ip", "link", "set", inside, "up"),
                    ("ip", "link", "set", "lo", "up")):
        _run("ip", "netns", "exec", node.netns, *command)


def _boot(node: Node, key: Path, host_key: Path, home: Path) -> None:
    own_home, own_ray_tmp = node.folder / "home", node.folder / "tmp-ray"
    (own_home / ".ssh").mkdir(parents=True)
    own_ray_tmp.mkdir()
    for skeleton in (".bashrc", ".profile"):
        if (Path("/etc/skel") / skeleton).exists():
            shutil.copy(Path("/etc/skel") / skeleton, own_home / skeleton)
    (own_home / ".ssh" / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    os.chmod(own_home / ".ssh" / "authorized_keys", 0o600)
    # the login is uid 0 (the prebuilt virtualenv may lie under root's home); inside the node it is the first
    # uid-0 entry, so what looks a home up by uid (ssh's `-i ~/ray_bootstrap_key.pem`, as Ray's autoscaler runs
    # it from the head to a worker) finds this node's home, as on a machine whose login has its own uid
    passwd = [line for line in Path("/etc/passwd").read_text().splitlines() if not line.startswith(f"{USER}:")]
    (node.folder / "passwd").write_text(f"{USER}:x:0:0::{home}:/bin/bash\n" + "\n".join(passwd) + "\n")
    config = node.folder / "sshd_config"
    config.write_text("\n".join([
        "Port 22", f"ListenAddress {node.address}", f"HostKey {host_key}", f"PidFile {node.folder / 'sshd.pid'}",
        f"AllowUsers {USER}", "PermitRootLogin prohibit-password", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "X11Forwarding no",
        "AllowTcpForwarding local", "AuthorizedKeysFile .ssh/authorized_keys", "MaxStartups 100", "MaxSessions 100",
        ""]))
    # PID 1 of the node: bash, which mounts the node's own folders, starts sshd and reaps what is orphaned
    boot = (f"hostname rx-{node.name} && mount --make-rprivate / && mount --bind {own_home} {home} && "
            f"mount --bind {own_ray_tmp} /tmp/ray && mount -t tmpfs -o size=2g tmpfs /dev/shm && "
            f"mount --bind {node.folder / 'passwd'} /etc/passwd && "
            f"{SSHD} -D -e -f {config} >> {node.folder / 'sshd.log'} 2>&1 & "
            "trap 'exit 0' TERM; while true; do wait; sleep 1; done")
    node.init = subprocess.Popen(
        ["ip", "netns", "exec", node.netns, "unshare", "--pid", "--mount", "--uts", "--fork", "--kill-child", "--mount-proc",
         "bash", "-c", boot], stdout=subprocess.DEVNULL, stderr=open(node.folder / "init.log", "w"),
        start_new_session=True)


def _wait_for_login(nodes: Nodes, node: Node) -> None:
    deadline = time.monotonic() + 60
    while (result := nodes.ssh(node, "hostname", timeout=30)).returncode != 0:
        if time.monotonic() > deadline or not node.alive():
            raise RuntimeError(f"ssh {USER}@{node.address} does not log in: {result.stderr.strip()} (init: "
                               f"{(node.folder / 'init.log').read_text()[-1500:]}; sshd: "
                               f"{(node.folder / 'sshd.log').read_text()[-1500:] if (node.folder / 'sshd.log').exists() else ''})")
        time.sleep(0.5)
    assert result.stdout.strip() == f"rx-{node.name}", result.stdout


def stop(nodes: Nodes | None) -> None:
    for node in nodes.nodes if nodes else []:
        node.kill()
    stop_leftovers()


def stop_leftovers() -> None:
    """Whatever an earlier (killed) run left: namespaces, links, the login."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for name in listed:
        if name.startswith("rxn77-"):
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
            for pid in pids:
                subprocess.run(["kill", "-KILL", pid], capture_output=True)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    # a namespace is destroyed (and its end of a veth pair with it) only once its last process has exited: the
    # outside ends go now, whatever is still exiting
    for i in range(4):
        subprocess.run(["ip", "link", "del", f"rxv77{i}a"], capture_output=True)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    subprocess.run(["userdel", "-f", USER], capture_output=True)
