"""A trial process's environment before its DeepSpeed engine starts: accelerator, JIT-op cache, threads and a
world-of-one process group. Ray-free: the loop's launchers (ray_xt.trial, ray_xt.trainer_hosts), the benchmarks
and ``make install``'s warm-up call it."""

from __future__ import annotations

import os
import socket
import sys

from ray_xt.deepspeed_ops import load_shm_comm_op


def free_port() -> int:
    """A free TCP port for ``MASTER_PORT``: a one-process trial binds nothing (its group starts on an in-process
    store), but code that reads the variable should find a port of its own, not DeepSpeed's default 29500 that
    every concurrent trial would share."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose_deepspeed_accelerator() -> None:
    """DeepSpeed picks its accelerator when it is first imported: the CPU one where there is no GPU."""
    import torch

    use_environment_extension_cache()
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def use_environment_extension_cache() -> None:
    """Keep DeepSpeed's JIT-built ops (the CPU shm comm op: ~60 s to compile on 2 cores) inside this Python
    environment instead of the user-wide ``~/.cache/torch_extensions``.

    The build command names the environment's include paths, and torch rebuilds an op whenever the command
    changes, so two checkouts (say a CI clone and a working copy) sharing the user-wide cache rebuild each
    other's op: measured here, every first trial of a sweep then sat ~57 s in ``deepspeed_init``. The op that
    ``make install`` builds (``ray_xt.warmup``) is the one this environment's trials load. A user's own
    ``TORCH_EXTENSIONS_DIR`` wins.
    """
    if os.access(sys.prefix, os.W_OK):
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))


def prepare_process(cpus: float) -> None:
    """Environment for a single-process DeepSpeed engine inside a Tune trial actor."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    choose_deepspeed_accelerator()
    load_shm_comm_op()  # before DeepSpeed's process group asks for it: see ray_xt.deepspeed_ops
    # Torch defaults to all cores; concurrent trials on shared cores then thrash.
    torch.set_num_threads(max(1, int(cpus)))
    if "RANK" not in os.environ:  # Ray Train workers come with their own rendezvous
        os.environ.update(
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1"
        )
        init_single_process_group()


def init_single_process_group() -> None:
    """A world of one needs no rendezvous: its process group starts on an in-process store.

    Through ``env://`` rank 0 would serve a TCP store on ``MASTER_PORT``, a port chosen free a moment earlier
    that another process (a concurrent trial, one of Ray's connections) can take in between; DeepSpeed then
    adopts the group that is already there (``deepspeed.comm.init_distributed``). A warm trainer host keeps the
    group for every trial it runs.
    """
    import torch.distributed as dist
    from deepspeed.accelerator import get_accelerator

    if not dist.is_initialized():  # the backend DeepSpeed would choose: gloo on CPUs, NCCL on CUDA
        dist.init_process_group(get_accelerator().communication_backend_name(), store=dist.HashStore(), rank=0,
                                world_size=1)
