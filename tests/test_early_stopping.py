"""Early stopping in ``fit``: validation every N steps recorded as (step, value), a stop after
``patience`` evaluations without improvement, the best weights restored and saved to the
checkpoint's ``best`` sibling, and an interrupted run resumed to the same end."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from symmetrize.train import ConfigError, TrainConfig, fit
from symmetrize.train.early_stop import EarlyStopping, best_path


def _task(seed: int = 0) -> tuple[nn.Module, TensorDataset, TensorDataset]:
    """A linear model starting at zero, trained towards ``W`` while the validation targets are
    ``-W x``: every step towards the training targets moves away from the validation ones."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(3, 3, generator=gen)
    x_train, x_val = torch.randn(96, 3, generator=gen), torch.randn(32, 3, generator=gen)
    model = nn.Linear(3, 3, bias=False)
    nn.init.zeros_(model.weight)
    return (model, TensorDataset(x_train, x_train @ weight.T),
            TensorDataset(x_val, -(x_val @ weight.T)))


def _loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction - target).square().mean()


def _config(**changes: object) -> TrainConfig:
    settings = {"epochs": 20, "batch_size": 16, "lr": 0.02, "seed": 1, "progress": False,
                "check": False, "eval_every": 2, "patience": 3, "keep_best": True}
    settings.update(changes)
    return TrainConfig(**settings)  # type: ignore[arg-type]


def _fit(config: TrainConfig, seed: int = 0) -> tuple[nn.Module, object]:
    model, train, val = _task(seed)
    result = fit(model, train, config, loss=_loss, metric=_loss, val=val)
    return model, result


def test_rising_validation_stops_after_patience_evaluations() -> None:
    _, result = _fit(_config(keep_best=False))
    values = result.val_metric
    assert all(b > a for a, b in itertools.pairwise(values))  # the set-up: it only rises
    assert result.stopped == "early_stop"
    assert result.val_steps == [2, 4, 6, 8]  # the best, then `patience` worse ones
    assert result.steps == 8 and result.best_step == 2
    assert result.best_metric == values[0]
    assert result.val_curve == list(zip(result.val_steps, values))


def test_restores_the_best_weights_and_saves_them(tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.pt"
    model, result = _fit(_config(checkpoint=str(checkpoint)))
    best, _ = _fit(_config(patience=None, keep_best=False, max_steps=result.best_step))
    assert torch.equal(model.weight, best.weight)  # the weights of step best_step
    saved = torch.load(best_path(checkpoint), map_location="cpu", weights_only=True)
    assert torch.equal(saved["weight"], best.weight)
    assert best_path(checkpoint) == str(tmp_path / "run.best.pt")
    without, _ = _fit(_config(keep_best=False))
    assert not torch.equal(without.weight, best.weight)  # the last weights, not the best


def test_evaluations_per_epoch_by_default() -> None:
    _, result = _fit(_config(eval_every=0, patience=None, keep_best=False, epochs=3))
    assert result.val_steps == [6, 12, 18] and len(result.val_metric) == 3
    assert result.stopped == "completed" and result.best_step == 6


def test_min_delta_demands_a_real_improvement() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=gen)
    data = TensorDataset(x, x @ torch.randn(3, 3, generator=gen).T)

    def run(min_delta: float) -> object:
        torch.manual_seed(0)
        return fit(nn.Linear(3, 3), data, _config(keep_best=False, min_delta=min_delta,
                                                  lr=1e-3), loss=_loss, metric=_loss, val=data)

    slow, strict = run(0.0), run(1e3)  # tiny steps: every evaluation improves a little
    assert all(b < a for a, b in itertools.pairwise(slow.val_metric))
    assert slow.stopped == "completed"
    assert strict.stopped == "early_stop" and strict.steps == 8


@pytest.mark.parametrize("interrupt", [3, 5])  # before the best evaluation is known, and after
def test_resume_reaches_the_same_end(tmp_path: Path, interrupt: int) -> None:
    whole, done = _fit(_config(checkpoint=str(tmp_path / "a.pt"), checkpoint_every=1))
    config = _config(checkpoint=str(tmp_path / "b.pt"), checkpoint_every=1, max_steps=interrupt)
    _, first = _fit(config)
    assert first.stopped == "max_steps"
    config.max_steps, config.resume = None, True
    resumed, second = _fit(config)
    assert torch.equal(resumed.weight, whole.weight)
    assert (second.val_curve, second.best_step, second.stopped) == (done.val_curve,
                                                                     done.best_step, done.stopped)
    a = torch.load(tmp_path / "a.best.pt", map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "b.best.pt", map_location="cpu", weights_only=True)
    assert torch.equal(a["weight"], b["weight"])
    again, third = _fit(config)  # resuming a run that stopped early trains nothing
    assert third.stopped == "early_stop" and third.steps == done.steps
    assert torch.equal(again.weight, whole.weight)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="patience=0 is not allowed"):
        TrainConfig(patience=0)
    with pytest.raises(ConfigError, match="eval_every=-1 is not allowed"):
        TrainConfig(eval_every=-1)
    with pytest.raises(ConfigError, match="min_delta=nan is not allowed"):
        TrainConfig(min_delta=float("nan"))
    with pytest.raises(TypeError, match="keep_best='yes' is not allowed"):
        TrainConfig(keep_best="yes")  # type: ignore[arg-type]
    model, train, _ = _task()
    with pytest.raises(ValueError, match="need a validation set"):
        fit(model, train, _config(), loss=_loss)


def test_early_stopping_state_round_trips() -> None:
    model = nn.Linear(2, 2)
    stopper = EarlyStopping(patience=2, min_delta=0.5, keep_best=True)
    assert not stopper.update(10, 3.0, model)
    assert not stopper.update(20, 2.8, model)  # not better by more than 0.5
    copy = EarlyStopping(patience=2, min_delta=0.5, keep_best=True)
    copy.load_state_dict(stopper.state_dict())
    assert (copy.best, copy.best_step, copy.since) == (3.0, 10, 1)
    assert copy.update(30, float("nan"), model) and copy.done  # NaN never improves
    with torch.no_grad():
        model.weight.zero_()
    assert copy.restore(model) and not torch.equal(model.weight, torch.zeros(2, 2))
