"""Start-up and memory per phase of `comfyless run lora-train`: process start -> first training
step, and peak RSS of each phase (load, encode, train, save, sample).

The run is the real command line (`comfyless.cli.main`) in a fresh child process on a random
checkpoint and a synthetic image set written once under --base-dir. The child wraps
RunContext.emit before anything else of comfyless is imported, so every engine event
(`started` / `progress` / `finished` per node) is stamped with the time since the child
process started and with the peak RSS (VmHWM) since the phase began: at each phase change
the child writes 5 to /proc/self/clear_refs, which resets VmHWM to the current RSS (Linux;
where that fails the table says so and the peaks are since process start).

    python bench/startup.py [--size tiny|small|full|tiny-unet] [--px 256] [--images 8] [--steps 2]
                            [--dtype fp32] [--gc on] [--importtime] [--base-dir D]

Phases: imports + workflow load/validate (until the first node starts), load (checkpoint,
image folder), encode (VAE, text), train (TrainLoraNode: to its first `progress` event, then
the rest), save (SaveLoRA, loss graph), sample (the workflow's generate-with-the-LoRA tail, at
64 px and 1 step). --importtime adds the slowest imports from `python -X importtime`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHASES = {"CheckpointLoaderSimple": "load", "LoadImageDataSetFromFolder": "load",
          "VAEEncode": "encode", "CLIPTextEncode": "encode", "TrainLoraNode": "train",
          "SaveLoRA": "save", "LossGraphNode": "save"}


def status_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    """VmHWM := VmRSS (Linux >= 4.0); False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def process_age() -> float:
    """Seconds since this process started (from /proc/self/stat, in clock ticks)."""
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / ticks
    uptime = float(open("/proc/uptime").read().split()[0])
    return uptime - start  # resolution: 10 ms (one clock tick)


# -- child: the CLI run with stamped events ---------------------------------------------------
def child(argv: list[str]) -> int:
    t0 = time.perf_counter() - process_age()  # perf_counter value at process start
    records: list[dict] = []
    phase = [None]
    resets = [True]

    def stamp(kind: str, node: str | None, class_type: str | None) -> None:
        name = PHASES.get(class_type, "sample") if class_type else None
        if name == "encode" and phase[0] in ("train", "save", "sample"):
            name = "sample"  # the generate tail's prompts
        if kind == "started" and name != phase[0]:
            records.append({"kind": "phase_end", "phase": phase[0],
                            "t": time.perf_counter() - t0, "hwm": status_kib("VmHWM"),
                            "rss": status_kib("VmRSS")})
            resets[0] = reset_peak() and resets[0]
            phase[0] = name
        records.append({"kind": kind, "node": node, "class_type": class_type,
                        "t": time.perf_counter() - t0, "hwm": status_kib("VmHWM"),
                        "rss": status_kib("VmRSS"), "torch": "torch" in sys.modules})

    from comfyless.engine import context  # torch-free; the CLI imports it anyway

    emit = context.RunContext.emit
    first_progress: set[str] = set()

    def stamped_emit(self, event):
        if event.kind in ("started", "finished") or (
                event.kind == "progress" and event.node_id not in first_progress):
            if event.kind == "progress":
                first_progress.add(event.node_id)
            stamp(event.kind, event.node_id, event.class_type)
        return emit(self, event)

    context.RunContext.emit = stamped_emit
    records.append({"kind": "imported_context", "t": time.perf_counter() - t0,
                    "torch": "torch" in sys.modules})
    from comfyless.cli import main

    code = main(argv)
    stamp("end", None, None)
    records.append({"kind": "phase_end", "phase": phase[0], "t": time.perf_counter() - t0,
                    "hwm": status_kib("VmHWM"), "rss": status_kib("VmRSS")})
    print("STARTUP " + json.dumps({"code": code, "records": records, "resets": resets[0]}))
    return code


# -- parent -----------------------------------------------------------------------------------
def prepare(base: Path, size: str, px: int, images: int) -> str:
    """The checkpoint and images under `base` (written once); returns the checkpoint name."""
    sys.path.insert(0, str(REPO))
    from comfyless.demo import write_demo_dataset
    from comfyless.models.checkpoint_writer import write_checkpoint

    name = f"bench-sd15-{size}.safetensors"
    ckpt = base / "models" / "checkpoints" / name
    if not ckpt.is_file() and size == "tiny-unet":
        write_tiny_unet_full_encoders(ckpt)
    elif not ckpt.is_file():
        write_checkpoint(ckpt, "sd15", size, seed=0)
    folder = base / "input" / f"bench_{px}px_{images}"
    if len(list(folder.glob("*.png"))) != images:
        write_demo_dataset(folder, count=images, size=px)
    return name


def write_tiny_unet_full_encoders(path: Path) -> None:
    """Issue 13's reference checkpoint: a tiny SD1.5-layout UNet beside the full-size CLIP-L and
    VAE, stored fp16 like the published SD1.5 file."""
    import torch
    from safetensors.torch import save_file

    from comfyless.files import write_atomic
    from comfyless.models.families.sd.writer import _text_and_vae, unet_config, unet_state_dict

    gen = torch.Generator().manual_seed(0)
    sd = _text_and_vae("sd15", "full", gen)
    sd.update(unet_state_dict(unet_config("sd15", "tiny", 768), gen))
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    write_atomic(path, lambda tmp: save_file(sd, str(tmp)))


def run_args(args, base: Path, ckpt: str) -> list[str]:
    sets = {"1.ckpt_name": ckpt, "2.folder": f"bench_{args.px}px_{args.images}",
            "5.steps": args.steps, "5.training_dtype": args.dtype, "5.lora_dtype": args.lora_dtype,
            "5.gradient_checkpointing": args.gc == "on", "6.prefix": "loras/bench_startup",
            "7.filename_prefix": "bench_startup_loss", "11.width": 64, "11.height": 64,
            "12.steps": 1, "14.filename_prefix": "bench_startup"}
    argv = ["run", "lora-train", "--base-dir", str(base), "--threads", str(args.threads)]
    for key, value in sets.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv


def report(result: dict) -> None:
    recs = result["records"]
    events = [r for r in recs if r["kind"] not in ("phase_end", "imported_context")]
    first = next(r for r in events if r["kind"] == "started")
    print(f"\nprocess start -> first node started (imports, workflow load/validate): "
          f"{first['t']:.2f} s (torch imported by then: {first['torch']})")
    print(f"{'node':>4} {'class':28} {'started s':>9} {'took s':>7}")
    started = {}
    for r in events:
        if r["kind"] == "started":
            started[r["node"]] = r["t"]
        elif r["kind"] == "progress":
            print(f"{r['node']:>4} {r['class_type'] + ' (1st step)':28} "
                  f"{started[r['node']]:9.2f} {r['t'] - started[r['node']]:7.2f}")
        elif r["kind"] == "finished":
            print(f"{r['node']:>4} {r['class_type']:28} {started[r['node']]:9.2f} "
                  f"{r['t'] - started[r['node']]:7.2f}")
    train = next((r for r in events if r["kind"] == "progress"
                  and r["class_type"] == "TrainLoraNode"), None)
    if train:
        print(f"process start -> first training step done: {train['t']:.2f} s")
    note = "" if result["resets"] else " (VmHWM reset refused: peaks since process start)"
    print(f"\n{'phase':8} {'ends s':>7} {'peak RSS MiB':>12} {'RSS at end MiB':>14}{note}")
    for r in recs:
        if r["kind"] == "phase_end":
            print(f"{r['phase'] or 'startup':8} {r['t']:7.2f} {r['hwm'] / 1024:12.0f} "
                  f"{r['rss'] / 1024:14.0f}")


def importtime(argv: list[str], top: int) -> None:
    """The slowest imports (cumulative) of the same command under -X importtime."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "comfyless", *argv],
                          capture_output=True, text=True, cwd=REPO)
    rows: list[tuple[int, str]] = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line[12:].split("|")
            rows.append((int(cumulative), name[1:].rstrip()))  # leading spaces: nesting
    roots = [(c, n) for c, n in rows if not n.startswith(" ")]  # imported by no module
    print(f"\nslowest top-level imports (cumulative, of {len(rows)} modules; -X importtime "
          "inflates them):")
    for cumulative, name in sorted(roots, reverse=True)[:top]:
        print(f"  {cumulative / 1e6:6.2f} s  {name.strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=("tiny", "small", "full", "tiny-unet"),
                    help="tiny-unet: issue 13's reference (tiny UNet, full-size CLIP-L and VAE)")
    ap.add_argument("--lora-dtype", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--px", type=int, default=256)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--gc", default="on", choices=("on", "off"))
    ap.add_argument("--threads", default="1")
    ap.add_argument("--importtime", action="store_true")
    ap.add_argument("--base-dir", default=None)
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args.child)
    base = Path(args.base_dir or Path(tempfile.gettempdir()) / "comfyless-bench-startup")
    ckpt = prepare(base, args.size, args.px, args.images)
    argv = run_args(args, base, ckpt)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True,
                          text=True, env=env, cwd=REPO)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("STARTUP ")), None)
    if proc.returncode != 0 or line is None:
        print(proc.stderr[-3000:])
        return 1
    print(f"comfyless run lora-train: sd15 {args.size}, {args.images} images {args.px} px, "
          f"{args.steps} steps {args.dtype}, checkpointing {args.gc}, threads {args.threads}")
    report(json.loads(line[len("STARTUP "):]))
    if args.importtime:
        importtime(argv, 15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
