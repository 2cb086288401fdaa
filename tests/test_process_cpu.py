"""bench/process_cpu.py charges a command's CPU time to its processes by kind and keeps the command's exit code."""

import subprocess
import sys

from conftest import ROOT


def test_a_busy_child_is_charged_and_its_exit_code_kept():
    # busy for 0.7 CPU s however fast the machine: it ends before the 1 s sample, so wait4 must charge it
    busy = "import sys, time\nwhile time.process_time() < 0.7: pass\nsys.exit(3)"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "process_cpu.py"), "--", sys.executable, "-c", busy],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in result.stdout.splitlines()
            if line.startswith("| ") and not line.startswith(("| process", "| ---"))}
    assert rows.get("-c", 0.0) >= 0.6  # the child's own CPU seconds, under its argv[1]
    assert "exit 3" in result.stdout
