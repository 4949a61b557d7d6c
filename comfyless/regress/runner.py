"""Run the cases of a suite, record or compare their outputs, and report (text, JSON, JUnit).

A case's outputs are the values that reach its output nodes (every linked input of every output
node that runs): what SaveImage saves, what SaveLoRA writes, what LossGraphNode plots.
Status per case: "passed", "failed" (an output differs from its golden file, or the workflow no
longer runs), "recorded" (--update), "error" (the case could not be set up, e.g. a missing file).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engine.context import RunContext
from ..engine.paths import BasePaths
from ..files import write_atomic
from ..typesys.errors import WorkflowError, WorkflowInvalid
from .compare import Artefact, Mismatch, classify, compare, record
from .suite import Case, Suite

SEED_INPUTS = ("seed", "noise_seed")
CASE_FILE = "case.json"  # per golden folder: the artefacts recorded and the seeds used


@dataclass
class CaseResult:
    name: str
    status: str
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)
    diff_images: list[str] = field(default_factory=list)
    seeds: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "recorded")


def select_cases(suite: Suite, pattern: str | None) -> list[Case]:
    """Cases whose name contains `pattern` (a regex search; all when None)."""
    if not pattern:
        return list(suite.cases)
    regex = re.compile(pattern)
    return [c for c in suite.cases if regex.search(c.name)]


def run_case(case: Case, suite: Suite, *, base_dir: str | None, update: bool,
             report_dir: Path, registry=None) -> CaseResult:
    """Run one case and record (update) or compare its outputs."""
    started = time.perf_counter()
    result = CaseResult(case.name, "passed")
    try:
        artefacts, result.seeds = _run_and_collect(case, base_dir, registry)
    except WorkflowInvalid as exc:
        result.status, result.messages = "failed", ["workflow invalid:", *_error_lines(exc)]
    except WorkflowError as exc:
        result.status, result.messages = "failed", [f"{type(exc).__name__}: {exc}"]
    except (OSError, ValueError) as exc:
        result.status, result.messages = "error", [f"{type(exc).__name__}: {exc}"]
    else:
        golden = suite.golden_dir(case)
        if update:
            _record_all(artefacts, golden, result)
        else:
            _compare_all(artefacts, golden, case, report_dir / case.name, result)
    result.seconds = time.perf_counter() - started
    return result


def _error_lines(exc: WorkflowInvalid) -> list[str]:
    return [f"  {e}" for e in exc.errors]


def _run_and_collect(case: Case, base_dir: str | None,
                     registry=None) -> tuple[list[Artefact], dict[str, int]]:
    from ..engine.execute import prepare, run_plan
    from ..engine.load import load_workflow_info
    from ..engine.overrides import UsageError, set_input

    if registry is None:
        from ..nodes import REGISTRY as registry  # noqa: N811
    loaded = load_workflow_info(case.workflow, registry)
    workflow = loaded.workflow
    for node_id, name, value in case.overrides:
        try:
            set_input(workflow, node_id, name, value,
                      source=f"case {case.name}: `set` {node_id}.{name} ({case.workflow.name})",
                      registry=registry, primitives=loaded.notes.primitives)
        except UsageError as exc:
            raise ValueError(str(exc)) from exc
    # Outputs go to a folder of their own, removed after the case: a suite run must not pile
    # files up in the base dir's output/ (the artefacts are compared from memory).
    with tempfile.TemporaryDirectory(prefix=f"comfyless-test-{case.name}-") as scratch:
        ctx = RunContext(ScratchPaths.over(BasePaths.resolve(base_dir), Path(scratch)))
        plan = prepare(workflow, registry, ctx)
        result = run_plan(plan, ctx)
        return _artefacts(plan, result, registry), _seeds(plan)


@dataclass
class ScratchPaths(BasePaths):
    """The base dir's folders for reading (models, input), a scratch folder for output/temp."""

    scratch: Path = Path()

    @classmethod
    def over(cls, paths: BasePaths, scratch: Path) -> ScratchPaths:
        return cls(paths.base, paths.extra, scratch=scratch)

    @property
    def output_dir(self) -> Path:
        return self.scratch / "output"

    @property
    def temp_dir(self) -> Path:
        return self.scratch / "temp"


def _seeds(plan) -> dict[str, int]:
    """Every seed a seeded node ran with, as "<node id>.<input>" -> value."""
    return {f"{nid}.{name}": int(node.constants[name])
            for nid, node in sorted(plan.nodes.items()) for name in SEED_INPUTS
            if isinstance(node.constants.get(name), int)}


def _artefacts(plan, result, registry) -> list[Artefact]:
    """The values that reached each output node, named "<node id>.<input>[.<item>]"."""
    artefacts = []
    for node_id in plan.outputs:
        for input_name, (source, slot) in sorted(plan.nodes[node_id].links.items()):
            values = result.outputs[source][slot]
            socket = registry[plan.class_types[source]].schema.outputs[slot].type.name
            for index, value in enumerate(values):
                kind = classify(value, socket)
                if kind is None:
                    continue
                suffix = f".{index}" if len(values) > 1 else ""
                artefacts.append(Artefact(f"{node_id}.{input_name}{suffix}", kind, value))
    return artefacts


def _record_all(artefacts: list[Artefact], golden: Path, result: CaseResult) -> None:
    golden.mkdir(parents=True, exist_ok=True)
    for stale in golden.iterdir():  # a re-record replaces the whole case
        if stale.is_file():
            stale.unlink()
    for artefact in artefacts:
        record(artefact, golden)
    summary = {"artefacts": {a.name: a.kind for a in artefacts}, "seeds": result.seeds,
               "environment": environment()}
    write_atomic(golden / CASE_FILE,
                 lambda tmp: tmp.write_text(json.dumps(summary, indent=1, sort_keys=True)))
    result.status = "recorded"
    result.messages.append(f"recorded {len(artefacts)} output(s) in {golden}")


def _compare_all(artefacts: list[Artefact], golden: Path, case: Case, diff_dir: Path,
                 result: CaseResult) -> None:
    summary_file = golden / CASE_FILE
    if not summary_file.is_file():
        result.status = "failed"
        result.messages.append(f"no golden outputs in {golden}; run with --update first")
        return
    summary = json.loads(summary_file.read_text())
    expected = summary["artefacts"]
    got = {a.name: a for a in artefacts}
    problems: list[Mismatch] = []
    for name in sorted(set(expected) - set(got)):
        problems.append(Mismatch(name, "output no longer produced"))
    for name in sorted(set(got) - set(expected)):
        problems.append(Mismatch(name, "new output (not in the golden record)"))
    for name in sorted(set(got) & set(expected)):
        if got[name].kind != expected[name]:
            problems.append(Mismatch(name, f"kind changed: {expected[name]} -> {got[name].kind}"))
            continue
        problems += compare(got[name], golden, case.tolerance, diff_dir)
    if problems:
        result.status = "failed"
        note = environment_note(summary.get("environment"), environment())
        result.messages += [note] if note else []
        result.messages += [f"{p.artefact}: {p.message}" for p in problems]
        result.diff_images += [str(p.diff_image) for p in problems if p.diff_image]


def environment() -> dict[str, Any]:
    """What a golden depends on besides the workflow: float results change with these."""
    import torch

    return {"threads": torch.get_num_threads(), "torch": torch.__version__}


def environment_note(recorded: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """A line saying how the golden's environment differs from this run's (None: same)."""
    if not recorded:
        return ("note: the golden does not record its thread count and torch version; "
                f"this run: {_describe_env(current)} (re-record with --update to keep them)")
    keys = ("threads", "torch")
    if all(recorded.get(k) == current.get(k) for k in keys):
        return None
    return (f"note: golden recorded with {_describe_env(recorded)}, this run uses "
            f"{_describe_env(current)}; floating-point results differ between thread counts "
            "and torch versions: run with the golden's --threads, or re-record with --update")


def _describe_env(env: dict[str, Any]) -> str:
    threads = env.get("threads")
    return f"{threads} thread{'s' if threads != 1 else ''}, torch {env.get('torch')}"


# -- reports --------------------------------------------------------------------------------

def results_json(results: list[CaseResult]) -> dict[str, Any]:
    return {"passed": all(r.ok for r in results), "cases": [asdict(r) for r in results]}


def write_junit(results: list[CaseResult], path: Path, suite_name: str) -> None:
    """JUnit XML: one <testcase> per case, failure text and diff-image paths included."""
    failures = sum(r.status == "failed" for r in results)
    errors = sum(r.status == "error" for r in results)
    root = ET.Element("testsuite", name=suite_name, tests=str(len(results)),
                      failures=str(failures), errors=str(errors),
                      time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(root, "testcase", classname=suite_name, name=r.name,
                             time=f"{r.seconds:.3f}")
        if r.seeds:  # JUnit wants <properties> before <failure>/<system-out>
            props = ET.SubElement(case, "properties")
            for key, value in r.seeds.items():
                ET.SubElement(props, "property", name=f"seed {key}", value=str(value))
        text = "\n".join(r.messages + [f"diff image: {p}" for p in r.diff_images])
        if r.status in ("failed", "error"):
            tag = "failure" if r.status == "failed" else "error"
            first = r.messages[0] if r.messages else r.status
            ET.SubElement(case, tag, message=first[:500]).text = text
        elif text:
            ET.SubElement(case, "system-out").text = text
    tree = ET.ElementTree(root)
    ET.indent(tree)
    write_atomic(path, lambda tmp: tree.write(tmp, encoding="utf-8", xml_declaration=True))
