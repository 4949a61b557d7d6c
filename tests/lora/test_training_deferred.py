"""The accelerator path of the training loop, run on the CPU: losses left on the device and
read together (training._LossLog), inputs moved by training.to_device."""

from __future__ import annotations

import math

import pytest
import torch

from comfyless.lora import training
from comfyless.lora.training import NonFiniteLoss, _LossLog, to_device, train_lora
from tests.lora.test_training import data, fp32


@pytest.fixture
def deferred(monkeypatch):
    """The loop as on a GPU: no read of the loss inside the step."""
    monkeypatch.setattr(training, "defers_reads", lambda device: True)
    return monkeypatch


def test_loss_log_names_the_first_non_finite_iteration():
    log = _LossLog(total=5, deferred=True)
    for v in (1.0, 2.0, float("nan"), float("inf")):
        log.add(torch.tensor(v))
    assert log.pending and not log.values  # nothing read yet
    with pytest.raises(NonFiniteLoss, match="at step 3 of 5") as info:
        log.read()
    assert info.value.step == 3 and math.isnan(info.value.value)
    assert log.values == [1.0, 2.0]


def test_loss_log_due_when_time_passed_or_at_the_end(monkeypatch):
    monkeypatch.setattr(training, "LOSS_READ_SECONDS", math.inf)
    log = _LossLog(total=2, deferred=True)
    log.add(torch.tensor(1.0))
    assert not log.due()
    log.add(torch.tensor(2.0))
    assert log.due()  # the last iteration
    monkeypatch.setattr(training, "LOSS_READ_SECONDS", 0.0)
    log = _LossLog(total=3, deferred=True)
    log.add(torch.tensor(1.0))
    assert log.due()


def test_deferred_nan_names_the_same_step(tiny_sd15_model, deferred):
    deferred.setattr(training, "LOSS_READ_SECONDS", math.inf)  # read only at the end
    lat, pos = data(tiny_sd15_model, n=4)
    lat[0]["samples"][2] = float("nan")
    cfg = fp32(steps=8)
    with pytest.raises(NonFiniteLoss) as late:
        train_lora(tiny_sd15_model, lat, pos, cfg, progress=lambda *a: None)
    deferred.undo()
    with pytest.raises(NonFiniteLoss) as at_once:
        train_lora(tiny_sd15_model, lat, pos, cfg)
    assert late.value.step == at_once.value.step
    assert "forward" not in tiny_sd15_model.diffusion_model.__dict__


def test_deferred_progress_and_snapshots_see_every_loss(tiny_sd15_model, deferred):
    deferred.setattr(training, "LOSS_READ_SECONDS", math.inf)
    lat, pos = data(tiny_sd15_model, n=2)
    calls, snaps = [], []
    result = train_lora(tiny_sd15_model, lat, pos, fp32(steps=4),
                        progress=lambda i, n, loss: calls.append((i, n, loss)),
                        snapshot_every=2, on_snapshot=snaps.append)
    # progress only after a read: the snapshot's (free to report) and the end's
    assert [c[:2] for c in calls] == [(2, 4), (4, 4)]
    assert [c[2] for c in calls] == [result.losses[1], result.losses[3]]
    assert [(s.steps, len(s.losses)) for s in snaps] == [(2, 2)]
    deferred.undo()
    eager = train_lora(tiny_sd15_model, lat, pos, fp32(steps=4))
    assert eager.losses == pytest.approx(result.losses, rel=1e-5)


def test_to_device_keeps_structure_and_cpu_tensors():
    t = torch.ones(2)
    out = to_device({"y": t, "refs": [t, "x"], "n": 3}, torch.device("cpu"))
    assert out["y"] is t and out["refs"][0] is t and out["refs"][1] == "x" and out["n"] == 3
