"""comfyless.cpu: bf16 capability from the x86 flags, else a timed probe."""

from __future__ import annotations

import pytest

from comfyless import cpu


@pytest.fixture(autouse=True)
def fresh_probe():
    cpu.bf16_matmul_ratio.cache_clear()
    yield
    cpu.bf16_matmul_ratio.cache_clear()


def write_cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: {flags}\n")
    return str(path)


def test_flags_of_the_first_processor(tmp_path):
    path = write_cpuinfo(tmp_path, "fpu avx2 avx512_bf16")
    assert cpu.x86_flags(path) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert cpu.native_bf16(cpu.x86_flags(path)) is True
    assert cpu.native_bf16(frozenset({"avx2", "fma"})) is False
    assert cpu.native_bf16(frozenset({"amx_bf16"})) is True


def test_no_flags_line_or_no_file_is_unknown(tmp_path):
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu.x86_flags(str(arm)) is None
    assert cpu.x86_flags(str(tmp_path / "missing")) is None


def test_slowdown_none_on_a_bf16_cpu_without_probing(monkeypatch):
    for name in cpu.ISA_LIMITS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cpu, "native_bf16", lambda: True)
    monkeypatch.setattr(cpu, "bf16_matmul_ratio", lambda: pytest.fail("probed"))
    assert cpu.bf16_slowdown() is None


@pytest.mark.parametrize("name, value", [("ATEN_CPU_CAPABILITY", "avx2"),
                                         ("ONEDNN_MAX_CPU_ISA", "AVX2")])
def test_a_bf16_cpu_whose_kernels_are_limited_is_probed(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(cpu, "native_bf16", lambda: True)
    monkeypatch.setattr(cpu, "bf16_matmul_ratio", lambda: 96.0)
    assert cpu.bf16_slowdown() == 96.0


@pytest.mark.parametrize("native", [False, None])
def test_slowdown_is_the_probed_ratio_when_slow(monkeypatch, native):
    monkeypatch.setattr(cpu, "native_bf16", lambda: native)
    monkeypatch.setattr(cpu, "bf16_matmul_ratio", lambda: 80.0)
    assert cpu.bf16_slowdown() == 80.0
    monkeypatch.setattr(cpu, "bf16_matmul_ratio", lambda: 1.1)  # as fast: nothing to say
    assert cpu.bf16_slowdown() is None


def test_probe_measures_once_per_process(monkeypatch, one_torch_thread):
    monkeypatch.setattr(cpu, "PROBE_SIZE", 8)  # a few-element smoke check, no real bf16 work
    first = cpu.bf16_matmul_ratio()
    assert first > 0
    assert cpu.bf16_matmul_ratio() == first  # cached
