"""Engine overhead: load, validate and execute a 10,000-node graph of trivial nodes; then the
wall time of `comfyless validate` on a 1,000-node workflow (interpreter start included).

Targets: load + validate + execute under 1 s; the CLI validate under 0.5 s.
Run: python bench/engine_overhead.py [--nodes 10000] [--cli-nodes 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from comfyless.engine.cache import OutputCache  # noqa: E402
from comfyless.engine.context import RunContext  # noqa: E402
from comfyless.engine.execute import run_plan  # noqa: E402
from comfyless.engine.validate import check_workflow  # noqa: E402
from comfyless.nodes import build_registry  # noqa: E402
from comfyless.typesys import INT, Input, Node, NodeSchema, Output, Result  # noqa: E402


class BenchAdd(Node):
    """a + b."""

    schema = NodeSchema("BenchAdd", inputs=(Input("a", INT, default=0, min=-2**62, max=2**62),
                                            Input("b", INT, default=0, min=-2**62, max=2**62)),
                        outputs=(Output("INT", INT),))

    @staticmethod
    def execute(ctx, a, b):
        return (a + b,)


class BenchSink(Node):
    """An output node."""

    schema = NodeSchema("BenchSink", inputs=(Input("value", INT, force_input=True),),
                        outputs=(), output_node=True)

    @staticmethod
    def execute(ctx, value):
        return Result((), ui={"value": [value]})


def synthetic_api(n: int) -> dict:
    """n nodes: a chain of adds, each also linked to an earlier node; one sink at the end."""
    api: dict = {"1": {"class_type": "BenchAdd", "inputs": {"a": 1, "b": 0}}}
    for i in range(2, n):
        api[str(i)] = {"class_type": "BenchAdd",
                       "inputs": {"a": [str(i - 1), 0], "b": [str(max(1, i // 2)), 0]
                                  if i % 2 else i % 7}}
    api[str(n)] = {"class_type": "BenchSink", "inputs": {"value": [str(n - 1), 0]}}
    return api


def _load(text: str, registry):
    from comfyless.engine.load import load_workflow

    return load_workflow(text.encode(), registry)


def bench_engine(n: int, repeat: int) -> dict[str, float]:
    registry = build_registry()
    registry.register(BenchAdd)
    registry.register(BenchSink)
    text = json.dumps(synthetic_api(n))
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext.create(tmp)
        for _ in range(repeat):
            c0 = time.process_time()
            t0 = time.perf_counter()
            workflow = _load(text, registry)
            t1 = time.perf_counter()
            plan = check_workflow(workflow, registry, ctx.paths)
            assert not plan.errors, plan.errors[:3]
            t2 = time.perf_counter()
            result = run_plan(plan, ctx, cache=OutputCache())
            t3 = time.perf_counter()
            best["cpu"] = min(best.get("cpu", float("inf")), (time.process_time() - c0) * 1000)
            assert len(result.executed) == n
            for name, value in (("load", t1 - t0), ("validate", t2 - t1), ("execute", t3 - t2)):
                best[name] = min(best.get(name, float("inf")), value * 1000)
    best["total"] = best["load"] + best["validate"] + best["execute"]
    return best


def cli_workflow(n: int) -> dict:
    """n shipped nodes: LoadImage -> AdjustBrightness x (n-2) -> SaveImage."""
    api: dict = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}
    for i in range(2, n):
        api[str(i)] = {"class_type": "AdjustBrightness",
                       "inputs": {"images": [str(i - 1), 0], "factor": 1.0}}
    api[str(n)] = {"class_type": "SaveImage",
                   "inputs": {"images": [str(n - 1), 0], "filename_prefix": "b"}}
    return api


def bench_cli(n: int, repeat: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        (base / "input").mkdir(parents=True)
        (base / "input" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        wf = Path(tmp) / "wf.json"
        wf.write_text(json.dumps(cli_workflow(n)))
        cmd = [sys.executable, "-m", "comfyless", "validate", str(wf), "--base-dir", str(base)]
        times, cpu = [], []
        for _ in range(repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if done.returncode != 0:
                raise SystemExit(f"validate failed ({done.returncode}): {done.stdout[-2000:]}"
                                 f"{done.stderr[-2000:]}")
    return min(times) * 1000, min(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--cli-nodes", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    best = bench_engine(args.nodes, args.repeat)
    print(f"{args.nodes} nodes (best of {args.repeat}): load {best['load']:.1f} ms, "
          f"validate {best['validate']:.1f} ms, execute {best['execute']:.1f} ms, "
          f"total {best['total']:.1f} ms (CPU {best['cpu']:.1f} ms; target < 1000 ms)")
    wall, cpu = bench_cli(args.cli_nodes, args.repeat)
    print(f"comfyless validate, {args.cli_nodes}-node workflow: {wall:.0f} ms wall, "
          f"{cpu:.0f} ms CPU (target < 500 ms wall; CPU time is what a busy machine hides)")


if __name__ == "__main__":
    main()
