"""Thread policy: --threads beats COMFYLESS_THREADS beats OMP_NUM_THREADS beats the default;
the chosen count reaches torch in `run`, `demo` and `test`; validate/nodes stay torch-free."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from comfyless import threads
from comfyless.threads import DEFAULT_THREADS, ThreadsError, choose

REPO = Path(__file__).resolve().parents[1]


def test_flag_beats_env_beats_omp_beats_default():
    env = {"COMFYLESS_THREADS": "3", "OMP_NUM_THREADS": "4"}
    assert choose(2, env).threads == 2 and choose(2, env).source == "--threads"
    assert choose(None, env).threads == 3 and choose(None, env).source == "COMFYLESS_THREADS"
    assert choose(None, {"OMP_NUM_THREADS": "4"}).threads is None  # torch's own handling
    assert choose(None, {}).threads == DEFAULT_THREADS
    assert choose("auto", env).threads == DEFAULT_THREADS  # --threads auto ignores the env
    assert choose(None, {"COMFYLESS_THREADS": "auto"}).threads == DEFAULT_THREADS


def test_more_than_one_thread_waits_passively_unless_the_user_chose():
    assert choose(2, {}).wait_policy == "PASSIVE"
    assert choose(1, {}).wait_policy is None
    assert choose(2, {"OMP_WAIT_POLICY": "ACTIVE"}).wait_policy is None
    assert choose(2, {"GOMP_SPINCOUNT": "1000"}).wait_policy is None


@pytest.mark.parametrize("bad", ["0", "-1", "two", ""])
def test_bad_counts_are_errors(bad):
    with pytest.raises(ThreadsError, match="positive number of threads"):
        threads.parse_threads(bad, "COMFYLESS_THREADS")


def test_load_based_threads():
    assert threads.load_based_threads(cpus=2, busy=0.1) == 2
    assert threads.load_based_threads(cpus=2, busy=1.2) == 1
    assert threads.load_based_threads(cpus=2, busy=5.0) == 1


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_NUM_THREADS", "COMFYLESS_THREADS", "OMP_WAIT_POLICY")}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env={**clean, **env}, timeout=120)


# Runs a command that applies the policy and then stops early (a missing workflow/suite, or a
# demo whose base-dir preparation is replaced), then reports what torch and OpenMP got.
REPORT = """
import os, sys, torch
print("threads", torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.parametrize("argv", [
    ["run", "no-such-workflow.json"],
    ["test", "no-such-suite.toml"],
    ["demo"],
])
@pytest.mark.parametrize("flag, env, expected", [
    (["--threads", "2"], {"COMFYLESS_THREADS": "1"}, "threads 2 PASSIVE"),
    ([], {"COMFYLESS_THREADS": "2"}, "threads 2 PASSIVE"),
    ([], {}, f"threads {DEFAULT_THREADS} None"),
])
def test_the_chosen_count_reaches_torch(argv, flag, env, expected):
    code = ("import sys, comfyless.demo as demo\n"
            "def stop(base): raise SystemExit('stopped')\n"
            "demo.prepare_base_dir = stop\n"
            "from comfyless.cli import main\n"
            f"assert 'torch' not in sys.modules\n"
            f"try:\n    main({argv + flag!r})\nexcept SystemExit:\n    pass\n" + REPORT)
    done = _python(code, **env)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_bad_env_value_is_a_usage_error():
    done = _python("import sys; from comfyless.cli import main; "
                   "sys.exit(main(['run', 'x.json']))", COMFYLESS_THREADS="lots")
    assert done.returncode == 2
    assert "COMFYLESS_THREADS" in done.stderr and "'lots'" in done.stderr


def test_validate_nodes_and_parsers_do_not_import_torch():
    code = ("import sys\n"
            "from comfyless.cli import main, build_parser\n"
            "import comfyless.regress.cli, comfyless.threads\n"
            "build_parser()\n"
            "main(['nodes'])\n"
            "main(['validate', 'txt2img'])\n"
            "main(['test', '--help'])\n"
            "print('torch loaded:', 'torch' in sys.modules)\n")
    done = _python(code)
    assert "torch loaded: False" in done.stdout, done.stderr
