"""Training steps/s on the CPU: one process vs two gloo ranks (DistributedDataParallel over the
LoRA adapters, comfyless/lora/training.py `_distributed_loop`).

For each UNet size (SD1.5 tiny / small, random weights, as bench/train_step.py builds them):
- 1 process, batch b            (the per-rank work of one rank)
- 1 process, batch 2b           (the same global batch as two ranks), 1 and 2 torch threads
- 2 ranks (gloo), batch b each  (global batch 2b), 1 torch thread per rank
- 2 ranks with --fsdp          (the frozen weights sharded while training, lora/sharding.py)
Steps/s is 1 / the median step time after the warm-up steps (rank 0's clock); samples/s is
that times the global batch; RSS is rank 0's highest resident memory at a step's end.
LoRA rank 8, AdamW, fp32, no gradient checkpointing.

    python bench/ddp_train_step.py [--sizes tiny,small] [--px 256,128] [--batch 1]
                                   [--steps 5] [--warmup 2] [--only TEXT]

The machine may be shared: compare within one run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _case(size: str, px: int, batch: int, steps: int, warmup: int, group=None
          ) -> tuple[float, float]:
    """(median seconds per optimizer step, highest RSS in MiB seen at a step's end) of
    train_lora (rank 0's, in a group)."""
    import torch

    from startup import status_kib
    from train_step import build

    from comfyless.lora.training import TrainConfig, train_lora

    model = build(size)
    g = torch.Generator().manual_seed(0)
    n = 8
    lat = [{"samples": torch.randn(n, 4, px // 8, px // 8, generator=g)}]
    pos = [[[torch.randn(1, 77, model.config.context_dim, generator=g), {}] for _ in range(n)]]
    stamps: list[float] = []
    cfg = TrainConfig(steps=warmup + steps, training_dtype="fp32", lora_dtype="fp32",
                      gradient_checkpointing=False, batch_size=batch, rank=8)
    rss: list[float] = []

    def progress(*_):
        stamps.append(time.perf_counter())
        rss.append(status_kib("VmRSS") / 1024)

    stamps.append(time.perf_counter())
    train_lora(model, lat, pos, cfg, progress=progress, group=group)
    times = [b - a for a, b in zip(stamps, stamps[1:], strict=False)][warmup:]
    return statistics.median(times), max(rss)


def _rank(rank: int, world: int, port: int, size: str, px: int, batch: int, steps: int,
          warmup: int, fsdp: bool, out) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch

    torch.set_num_threads(1)
    from comfyless import distributed

    group = distributed.init_from_env("cpu", fsdp=fsdp)
    try:
        measured = _case(size, px, batch, steps, warmup, group)
        if rank == 0:
            out.put(measured)
    finally:
        distributed.shutdown()


def _two_ranks(size: str, px: int, batch: int, steps: int, warmup: int, fsdp: bool = False
               ) -> tuple[float, float]:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_rank, args=(2, port, size, px, batch, steps, warmup, fsdp, queue),
                       nprocs=2, join=True, start_method="spawn")
    return queue.get()


def _one_process(size: str, px: int, batch: int, steps: int, warmup: int, threads: int
                 ) -> tuple[float, float]:
    import torch

    torch.set_num_threads(threads)
    return _case(size, px, batch, steps, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--px", default="256,128", help="pixels per size, in the same order")
    parser.add_argument("--batch", type=int, default=1, help="per-rank batch b")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--only", default="", help="only the setups whose label has this text "
                        "(e.g. 'ranks')")
    args = parser.parse_args()
    print(f"{'size':6} {'px':>4} {'setup':34} {'global':>6} {'s/step':>8} {'steps/s':>8} "
          f"{'samples/s':>9} {'RSS MiB':>8}")
    for size, px in zip(args.sizes.split(","), (int(p) for p in args.px.split(",")),
                        strict=True):
        b = args.batch
        rows = [
            (f"1 process, batch {b}, 1 thread", b, lambda: _one_process(
                size, px, b, args.steps, args.warmup, 1)),
            (f"1 process, batch {2 * b}, 1 thread", 2 * b, lambda: _one_process(
                size, px, 2 * b, args.steps, args.warmup, 1)),
            (f"1 process, batch {2 * b}, 2 threads", 2 * b, lambda: _one_process(
                size, px, 2 * b, args.steps, args.warmup, 2)),
            (f"2 ranks gloo, batch {b} each, 1 thr", 2 * b, lambda: _two_ranks(
                size, px, b, args.steps, args.warmup)),
            (f"2 ranks --fsdp, batch {b} each, 1 thr", 2 * b, lambda: _two_ranks(
                size, px, b, args.steps, args.warmup, fsdp=True)),
        ]
        for label, global_batch, measure in rows:
            if args.only not in label:
                continue
            seconds, rss = measure()
            print(f"{size:6} {px:4} {label:34} {global_batch:6} {seconds:8.3f} "
                  f"{1 / seconds:8.2f} {global_batch / seconds:9.2f} {rss:8.0f}", flush=True)


if __name__ == "__main__":
    main()
