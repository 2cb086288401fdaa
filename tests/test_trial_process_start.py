"""A trial process starts its DeepSpeed engine whatever other processes did before or do meanwhile: its
rendezvous port can be taken by another process (eight concurrent trials, Ray's own connections), and a
process killed while loading DeepSpeed's CPU op can leave torch's build lock behind."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from ray_xt.deepspeed_ops import clear_stale_build_lock
from test_preload import _extension_build_dir

ENGINE = """
import os, socket, sys
import torch
from ray_xt.loop import deepspeed_config
from ray_xt.process_env import prepare_process

prepare_process(1)
# another process takes the rendezvous port between its choice and the engine's start
squatter = socket.socket()
squatter.bind((os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])))
squatter.listen()

import deepspeed
model = torch.nn.Linear(4, 2)
engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=0.1),
                                  config=deepspeed_config(4, 2, False))
before = model.weight.detach().clone()
loss = engine(torch.ones(4, 4)).sum()
engine.backward(loss)
engine.step()
import torch.distributed as dist
print(dist.get_world_size(), dist.get_backend(), bool((engine.module.weight != before).any()))
"""


def _engine(env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ENGINE], capture_output=True, text=True, timeout=300, env=env)


def test_a_one_process_engine_starts_and_steps_with_its_rendezvous_port_taken():
    out = _engine()
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "1 gloo True"


def test_an_engine_starts_past_a_build_lock_left_by_a_killed_process(tmp_path):
    # the environment's built op, copied (timestamps kept, so nothing is rebuilt) into a folder of the test's own
    built = _extension_build_dir(dict(os.environ))
    if not os.path.exists(os.path.join(built, "deepspeed_shm_comm.so")):
        pytest.skip("no prebuilt DeepSpeed shm op in this environment (make install builds it)")
    shutil.copytree(built, tmp_path / "deepspeed_shm_comm", ignore=shutil.ignore_patterns("lock", "*.flock"))
    baton = tmp_path / "deepspeed_shm_comm" / "lock"
    baton.touch()  # what a process SIGKILLed inside torch's load step leaves behind
    old = time.time() - 600
    os.utime(baton, (old, old))
    # without ray_xt's loader this waits forever on the file (torch's FileBaton has no time limit)
    out = _engine({**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "1 gloo True"
    assert "removed" in out.stderr and not baton.exists()


def test_a_fresh_build_lock_is_waited_for_and_an_old_one_removed(tmp_path):
    baton = tmp_path / "lock"
    baton.touch()
    start = time.monotonic()
    assert clear_stale_build_lock(tmp_path, stale_after_s=1.0) is True  # a live build would have ended by then
    assert 0.9 <= time.monotonic() - start and not baton.exists()
    assert clear_stale_build_lock(tmp_path, stale_after_s=1.0) is False  # nothing to wait for
