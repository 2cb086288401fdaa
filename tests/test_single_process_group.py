"""A one-process trial's DeepSpeed engine starts without a TCP rendezvous: the port chosen for it can be taken
by another process before the engine starts (eight concurrent trials, Ray's own connections), and the trial
must not care."""

import subprocess
import sys

CODE = """
import os, socket
import torch
from ray_xt.trial import deepspeed_config, prepare_process

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


def test_a_one_process_engine_starts_and_steps_with_its_rendezvous_port_taken():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "1 gloo True"
