"""`comfyless test --workers N` and `--ray`: the same verdicts and JUnit cases as a sequential
run; a case whose worker process dies is that case's error and the others complete."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from comfyless import dispatch
from comfyless.cli import main as comfyless
from comfyless.dispatch import DEAD_WORKER, Dispatch, run_jobs

# A custom node pack whose output node ends its process at once (no exception, no result):
# what a segfault or the out-of-memory killer looks like from outside.
DIE_PACK = '''
import os


class DieHere:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"code": ("INT", {"default": 7})}}

    RETURN_TYPES = ()
    FUNCTION = "die"
    OUTPUT_NODE = True

    def die(self, code):
        os._exit(code)


NODE_CLASS_MAPPINGS = {"DieHere": DieHere}
'''


def _test(suite, base, *extra) -> int:
    return comfyless(["test", str(suite), "--base-dir", str(base), "--deterministic", *extra])


def _junit_cases(path):
    """[(name, verdict)] in file order; verdict: failure/error tag or "passed"."""
    cases = []
    for case in ET.parse(path).getroot().findall("testcase"):
        tags = [t.tag for t in case if t.tag in ("failure", "error")]
        cases.append((case.get("name"), tags[0] if tags else "passed"))
    return cases


def _verdicts(json_text: str):
    # A cluster the test started (not the CLI) may print Ray's late notes on stdout: skip them.
    body, _end = json.JSONDecoder().raw_decode(json_text[json_text.index("{"):])
    return [(c["name"], c["status"], c["messages"]) for c in body["cases"]]


@pytest.fixture
def dying_suite(suite_dir, tmp_path):
    """The example suite plus a case whose workflow's output node ends its process."""
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "die_pack.py").write_text(DIE_PACK)
    (suite_dir / "die.json").write_text(json.dumps(
        {"1": {"class_type": "DieHere", "inputs": {"code": 7}}}))
    manifest = suite_dir / "suite.toml"
    text = manifest.read_text().replace('[[case]]\nname = "lora-train-quick"',
                                        '[[case]]\nname = "die"\nworkflow = "die.json"\n\n'
                                        '[[case]]\nname = "lora-train-quick"', 1)
    manifest.write_text(text)
    return manifest, packs


def test_workers_give_the_sequential_verdicts_and_junit(suite_dir, shipped_base, tmp_path,
                                                        capsys):
    manifest = suite_dir / "suite.toml"
    assert _test(manifest, shipped_base, "--update") == 0
    # One case changed after recording, so the run has a failure as well as a pass.
    manifest.write_text(manifest.read_text().replace('"3.steps" = 4', '"3.steps" = 4, '
                                                                      '"3.seed" = 7'))
    capsys.readouterr()
    runs = {}
    for mode, extra in (("sequential", ()), ("workers", ("--workers", "2"))):
        report = tmp_path / f"{mode}.xml"
        code = _test(manifest, shipped_base, "--junit", str(report), "--json",
                     "--report-dir", str(tmp_path / f"diffs-{mode}"), *extra)
        runs[mode] = code, _junit_cases(report), _verdicts(capsys.readouterr().out)
    assert runs["workers"][:2] == runs["sequential"][:2]
    assert runs["sequential"][1] == [("txt2img", "failure"), ("lora-train-quick", "passed")]
    strip = lambda messages: [m for m in messages if "diff image" not in m]  # noqa: E731
    assert [(n, s, strip(m)) for n, s, m in runs["workers"][2]] == \
        [(n, s, strip(m)) for n, s, m in runs["sequential"][2]]
    assert list((tmp_path / "diffs-workers" / "txt2img").glob("*.diff.png"))


def test_a_dying_worker_is_its_case_error_and_the_rest_complete(dying_suite, shipped_base,
                                                                tmp_path, capsys):
    manifest, packs = dying_suite
    report = tmp_path / "report.xml"
    code = _test(manifest, shipped_base, "--update", "--workers", "2", "--custom-nodes",
                 str(packs), "--junit", str(report), "-k", "txt2img|die")  # 2 cases: quicker
    assert code == 2  # a case error
    out = capsys.readouterr().out
    assert _junit_cases(report) == [("txt2img", "passed"), ("die", "error")]
    assert "ERROR    die" in out and DEAD_WORKER in out
    assert (manifest.parent / "golden" / "txt2img" / "case.json").is_file()


def test_ray_missing_says_how_to_install_and_runs_nothing(suite_dir, shipped_base, monkeypatch,
                                                          capsys):
    monkeypatch.setattr(dispatch, "ray_installed", lambda: False)
    assert _test(suite_dir / "suite.toml", shipped_base, "--update", "--ray") == 2
    err = capsys.readouterr().err
    assert "--ray needs Ray" in err and 'pip install "comfyless[ray]"' in err
    assert not (suite_dir / "golden").exists()


def test_workers_flag_rejects_zero(suite_dir, shipped_base, capsys):
    assert _test(suite_dir / "suite.toml", shipped_base, "--workers", "0") == 2
    assert "--workers" in capsys.readouterr().err


# -- the dispatcher on its own ----------------------------------------------------------------

def _half_or_die(value: int) -> float:
    """Jobs for the dispatcher tests: a negative value kills the worker, zero raises."""
    if value < 0:
        os._exit(3)
    return 1 / value * 2 if value else 1 / value


def _crash(job, message):
    return ("crashed", job, message)


def test_local_workers_keep_job_order_and_isolate_a_dead_worker():
    seen = []
    results = run_jobs(_half_or_die, [1, 0, -1, 4, 8], Dispatch(workers=2), on_crash=_crash,
                       on_result=lambda i, r: seen.append(i))
    assert results[0] == 2.0 and results[3] == 0.5 and results[4] == 0.25
    assert results[1] == ("crashed", 0, "ZeroDivisionError: division by zero")
    assert results[2] == ("crashed", -1, DEAD_WORKER)
    assert seen == [0, 1, 2, 3, 4]


def test_sequential_dispatch_calls_in_this_process():
    assert run_jobs(abs, [-1, 2], Dispatch(), on_crash=_crash) == [1, 2]


# -- Ray (skipped where Ray is not installed: pip install "comfyless[ray]") --------------------

@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def test_ray_gives_the_sequential_verdicts_and_a_dead_worker_is_its_case_error(
        ray_cluster, dying_suite, shipped_base, tmp_path, capsys):
    manifest, packs = dying_suite
    sequential_suite = manifest.parent / "no-die.toml"  # sequential cannot survive `die`
    sequential_suite.write_text(manifest.read_text().replace(
        '[[case]]\nname = "die"\nworkflow = "die.json"\n\n', ""))
    assert _test(sequential_suite, shipped_base, "--update") == 0
    capsys.readouterr()
    assert _test(sequential_suite, shipped_base, "--json", "--junit",
                 str(tmp_path / "seq.xml")) == 0
    sequential = _verdicts(capsys.readouterr().out)
    code = _test(manifest, shipped_base, "--json", "--custom-nodes", str(packs), "--junit",
                 str(tmp_path / "ray.xml"), "--ray")
    on_ray = _verdicts(capsys.readouterr().out)
    assert code == 2
    assert [v for v in on_ray if v[0] != "die"] == sequential
    assert [v[:2] for v in on_ray] == [("txt2img", "passed"), ("die", "error"),
                                       ("lora-train-quick", "passed")]
    assert "Ray worker" in on_ray[1][2][0]
    assert [c for c in _junit_cases(tmp_path / "ray.xml") if c[0] != "die"] == \
        _junit_cases(tmp_path / "seq.xml")
