"""This machine as a cluster node for `ray up`: Debian's sshd on 127.0.0.1:22, a key made here, and a login of its own.

Ray's SSH command runner has no port setting (it always connects to port 22), so the server takes port 22, on
loopback only, with public-key logins for one user and nothing else. That user is an alias of root (uid 0, its
own name and home): the project's virtualenv lives under root's home, which no other user may read, and its own
home keeps what `ray up` writes there (`~/ray-xt`, `~/.bashrc`, `~/mlflow`, `~/.ray`) out of root's.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
USER = "rayxt-ci"


@dataclass(frozen=True)
class SSHNode:
    user: str
    key: Path
    home: Path
    pidfile: Path

    def run(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``command`` in a login shell on the node, as `ray up` and `ray submit` run theirs."""
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"{self.user}@127.0.0.1", f"bash --login -c {_quote(command)}"],
            capture_output=True, text=True, timeout=timeout)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def missing() -> str | None:
    """Why this machine cannot host the node (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (an sshd on port 22 and a login of its own)"
    for tool in (SSHD, "ssh", "ssh-keygen", "rsync", "useradd", "userdel"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install openssh-server openssh-client rsync)"
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 22)) == 0:
            return "something already listens on 127.0.0.1:22"
    return None


def start(folder: Path) -> SSHNode:
    """sshd on 127.0.0.1:22 and the node's login, under ``folder``; `stop` undoes both."""
    folder.mkdir(parents=True, exist_ok=True)
    key, host_key, home = folder / "user_key", folder / "host_key", folder / "home"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    subprocess.run(["userdel", "-f", USER], capture_output=True)  # left over from a run that was killed
    subprocess.run(["useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", str(home), "-s", "/bin/bash", "-p", "*", USER],
                   check=True)
    (home / ".ssh").mkdir(parents=True)
    for skeleton in (".bashrc", ".profile"):
        if (Path("/etc/skel") / skeleton).exists():
            shutil.copy(Path("/etc/skel") / skeleton, home / skeleton)
    (home / ".ssh" / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    os.chmod(home / ".ssh" / "authorized_keys", 0o600)
    pidfile = folder / "sshd.pid"
    config = folder / "sshd_config"
    config.write_text("\n".join([
        "Port 22", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {pidfile}", f"AllowUsers {USER}",
        "PermitRootLogin prohibit-password", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "X11Forwarding no", "AllowTcpForwarding local",
        "AuthorizedKeysFile .ssh/authorized_keys", "MaxStartups 100", "MaxSessions 100", ""]))
    Path("/run/sshd").mkdir(exist_ok=True)  # the privilege-separation folder sshd insists on
    subprocess.run([SSHD, "-f", str(config), "-E", str(folder / "sshd.log")], check=True)
    node = SSHNode(USER, key, home, pidfile)
    deadline = time.monotonic() + 30
    while (result := node.run("true", timeout=20)).returncode != 0:
        if time.monotonic() > deadline:
            stop(node)
            raise RuntimeError(f"ssh {USER}@127.0.0.1 does not log in: {result.stderr.strip()} "
                               f"(sshd log: {(folder / 'sshd.log').read_text()[-2000:]})")
        time.sleep(0.5)
    return node


def stop(node: SSHNode) -> None:
    if node.pidfile.exists():
        subprocess.run(["kill", node.pidfile.read_text().strip()], capture_output=True)
    subprocess.run(["userdel", "-f", USER], capture_output=True)
