"""Where a run's CPU time goes, by kind of process: runs a command and samples /proc every second until it ends.

    .venv/bin/python bench/process_cpu.py -- .venv/bin/ray-xt run experiments/demo.yaml

Ray names its worker processes by what they run (``ray::TrainerHost``, ``ray::evaluate_languages``,
``ray::ImplicitFunc`` for Tune's trial actors, ``ray::IDLE`` for a worker not yet given work); other processes
are named by their executable or script. A process's CPU seconds are charged to the name it has when sampled,
and a process that starts and ends between two samples is missed, so the table is a close lower bound — except
for the command itself, whose CPU seconds since the last sample (and its reaped children's) come from wait4. Every
process on the machine is charged (run it on an otherwise quiet machine). Linux only.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_kind(pid: str) -> str | None:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    if not cmd:
        return None
    return argv_kind(cmd.split())


def argv_kind(argv: list[str]) -> str:
    ray_worker = re.match(r"ray::(\S+)", argv[0])
    if ray_worker:
        return "ray::" + ray_worker.group(1).split(".")[0]
    exe = argv[0].rsplit("/", 1)[-1]
    if exe in ("raylet", "gcs_server") or len(argv) == 1:
        return exe
    return argv[1].rsplit("/", 1)[-1][:40]  # python's script (default_worker.py, setup_worker.py, ray-xt, ...)


def cpu_seconds() -> dict[str, float]:
    seconds = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("name the command to run after --")

    charged: collections.Counter[str] = collections.Counter()
    processes: dict[str, set[str]] = collections.defaultdict(set)
    previous = cpu_seconds()  # what ran before the command is not charged
    started = time.perf_counter()
    child = subprocess.Popen(command)
    child_sampled = 0.0
    while True:
        # wait4, not Popen.poll: it also returns the CPU time the command used after the last sample
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        finished = pid != 0
        now = cpu_seconds()
        for pid, total in now.items():
            used = total - previous.get(pid, 0.0)
            kind = process_kind(pid) if used > 0 else None
            if kind:
                charged[kind] += used
                processes[kind].add(pid)
                child_sampled += used if pid == str(child.pid) else 0.0
        previous = now
        if finished:
            break
        time.sleep(1)
    child.returncode = os.waitstatus_to_exitcode(status)
    unsampled = usage.ru_utime + usage.ru_stime - child_sampled
    if unsampled > 0:
        kind = argv_kind(command)
        charged[kind] += unsampled
        processes[kind].add(str(child.pid))
    wall = time.perf_counter() - started
    total = sum(charged.values())
    print(f"\n{' '.join(command)}: exit {child.returncode}, {wall:.0f} s wall, {total:.0f} CPU s "
          f"({total / wall:.2f} cores busy on average)")
    print("| process | CPU s | share | processes |\n| --- | --- | --- | --- |")
    for kind, used in charged.most_common():
        if used >= 0.5:
            print(f"| {kind} | {used:.1f} | {100 * used / total:.0f}% | {len(processes[kind])} |")
    if args.out:
        args.out.write_text(json.dumps({k: {"cpu_s": v, "processes": len(processes[k])}
                                        for k, v in charged.most_common()}, indent=1) + "\n")
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
