"""Launching distributed tests on one machine: spawned gloo ranks, and torchrun "nodes" on loopback.

``run_ranks`` starts ``world`` processes, each with the torchrun environment (``MASTER_ADDR``,
``MASTER_PORT``, ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``) and, unless told otherwise, a gloo group
already joined; each calls ``target(rank, *args)`` and its result comes back by value (tensors turn
into NumPy arrays on the way and back into tensors here: a tensor would travel as a shared-memory
handle that dies with its process). A rank's exception comes back as its traceback.

``torchrun_nodes`` starts ``nnodes`` torchrun launchers (one process each) that meet at a loopback
rendezvous, as separate machines would, and returns their completed processes.
"""

from __future__ import annotations

import os
import queue as queue_module
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["free_port", "run_ranks", "torchrun_nodes"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    return value


def _to_torch(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, dict):
        return {k: _to_torch(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_torch(v) for v in value)
    return value


def _rank_main(
    rank: int, world: int, port: int, init_group: bool, target: Callable, args: tuple, queue
) -> None:
    import torch.distributed as dist

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    try:
        if init_group:
            dist.init_process_group("gloo", rank=rank, world_size=world)
        try:
            queue.put((rank, _to_numpy(target(rank, *args)), None))
        finally:
            if init_group:
                dist.destroy_process_group()
    except BaseException:
        queue.put((rank, None, traceback.format_exc()))
        raise


def run_ranks(
    target: Callable[..., Any], world: int, *args: Any, init_group: bool = True, timeout: float = 300
) -> dict[int, Any]:
    """``{rank: target(rank, *args)}`` from ``world`` spawned processes (``target`` importable by name).

    Raises AssertionError with the rank's traceback when a rank fails, or when a process exits non-zero.
    """
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=_rank_main, args=(rank, world, port, init_group, target, args, queue))
        for rank in range(world)
    ]
    for proc in procs:
        proc.start()
    results: dict[int, Any] = {}
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while len(results) + len(errors) < world:  # every rank reports once: its result or its traceback
            try:
                rank, value, error = queue.get(timeout=1)
            except queue_module.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:  # killed without a word, or hanging
                    errors.append(f"no report from every rank (exit codes {[p.exitcode for p in procs]})")
                    break
                continue
            if error is None:
                results[rank] = _to_torch(value)
            else:
                errors.append(f"rank {rank} failed:\n{error}")
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    assert not errors, "\n".join(errors)
    codes = [proc.exitcode for proc in procs]
    assert codes == [0] * world, f"exit codes {codes}"
    return results


def torchrun_nodes(
    module_args: Sequence[str], nnodes: int = 2, env: dict[str, str] | None = None, timeout: float = 300
) -> list[subprocess.CompletedProcess]:
    """Run ``python -m <module_args>`` under ``nnodes`` torchrun launchers of one process each, which
    rendezvous at 127.0.0.1 (static: ``--master_addr/--master_port``, node ranks 0..nnodes-1).

    Raises AssertionError with every node's output when one exits non-zero or they run past ``timeout``.
    """
    port = free_port()
    child_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                str(nnodes),
                "--node_rank",
                str(node),
                "--nproc_per_node",
                "1",
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                str(port),
                "-m",
                *module_args,
            ],  # fmt: skip
            cwd=REPO_ROOT,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in range(nnodes)
    ]
    done = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, None))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    failed = [i for i, p in enumerate(done) if p.returncode != 0]
    assert not failed, "\n".join(
        f"--- node {i} (exit {p.returncode}):\n{p.stdout[-4000:]}" for i, p in enumerate(done)
    )
    return done
