"""Bad input to training and fine-tuning (TrainConfig, fit, evaluate, finetune_lifter,
run_demo): each case raises the documented exception with a message naming the argument, the
value given and what is allowed, before any work starts (nothing trained, nothing written)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from symmetrize.train import ConfigError, ConfigTypeError, TrainConfig, evaluate, fit

CUDA = torch.cuda.is_available()


def _data(n: int = 8) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 4, 2, generator=generator),
                         torch.randn(n, 4, 3, generator=generator))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3))


def _config(**changes: Any) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 4, "progress": False, "check": False,
                          **changes})


# ----------------------------------------------------------------------------- TrainConfig
CONFIG_CASES = [
    ({"epochs": -1}, ConfigError, r"epochs=-1 is not allowed: an integer >= 1"),
    ({"epochs": 0}, ConfigError, r"epochs=0 .*>= 1"),
    ({"epochs": 2.5}, ConfigTypeError, r"epochs=2.5 .*an integer"),
    ({"epochs": True}, ConfigTypeError, r"epochs=True .*an integer"),
    ({"batch_size": 0}, ConfigError, r"batch_size=0 .*an integer >= 1"),
    ({"batch_size": "64"}, ConfigTypeError, r"batch_size='64'"),
    ({"lr": math.nan}, ConfigError, r"lr=nan .*finite number > 0"),
    ({"lr": math.inf}, ConfigError, r"lr=inf"),
    ({"lr": 0.0}, ConfigError, r"lr=0.0 .*> 0"),
    ({"lr": -1e-3}, ConfigError, r"lr=-0.001"),
    ({"lr": "1e-3"}, ConfigTypeError, r"lr='1e-3'"),
    ({"betas": (0.9,)}, ConfigTypeError, r"betas=\(0.9,\) .*two numbers in \[0, 1\)"),
    ({"betas": (0.9, 1.0)}, ConfigError, r"betas=\(0.9, 1.0\)"),
    ({"betas": (math.nan, 0.9)}, ConfigError, r"betas=\(nan, 0.9\)"),
    ({"lr_decay": 0.0}, ConfigError, r"lr_decay=0.0 .*\(0, 1\]"),
    ({"lr_decay": 1.5}, ConfigError, r"lr_decay=1.5"),
    ({"bn_momentum": (0.1, 0.0)}, ConfigError, r"bn_momentum=\(0.1, 0.0\) .*\(0, 1\]"),
    ({"bn_momentum": 0.1}, ConfigTypeError, r"bn_momentum=0.1"),
    ({"grad_clip": 0.0}, ConfigError, r"grad_clip=0.0 .*> 0, None or 'auto'"),
    ({"grad_clip": math.nan}, ConfigError, r"grad_clip=nan"),
    ({"grad_clip": "big"}, ConfigTypeError, r"grad_clip='big'"),
    ({"amp": "fp8"}, ConfigError, r"amp='fp8' .*'auto', 'bf16', 'fp16', 'off'"),
    ({"device": "gpu"}, ConfigError, r"device='gpu' .*'cpu', 'cuda'"),
    ({"device": "meta"}, ConfigError, r"device='meta' .*holds real data"),
    ({"device": 3}, ConfigTypeError, r"device=3"),
    ({"seed": -1}, ConfigError, r"seed=-1 .*0 \.\. 4294967295"),
    ({"seed": 2**40}, ConfigError, r"seed=1099511627776"),
    ({"seed": 1.5}, ConfigTypeError, r"seed=1.5"),
    ({"checkpoint": ""}, ConfigTypeError, r"checkpoint='' .*a file path"),
    ({"checkpoint": 5}, ConfigTypeError, r"checkpoint=5"),
    ({"checkpoint_every": -1}, ConfigError, r"checkpoint_every=-1 .*>= 0"),
    ({"resume": True}, ConfigError, r"resume=True .*checkpoint"),
    ({"resume": "yes"}, ConfigTypeError, r"resume='yes' .*True or False"),
    ({"max_minutes": 0}, ConfigError, r"max_minutes=0 .*minutes > 0"),
    ({"max_minutes": math.nan}, ConfigError, r"max_minutes=nan"),
    ({"max_steps": 0}, ConfigError, r"max_steps=0 .*>= 1"),
    ({"log": "run.txt"}, ConfigError, r"log='run.txt' .*\.csv or \.jsonl"),
    ({"log": "run.csv", "checkpoint": "run.csv"}, ConfigError, r"log='run.csv' .*other than"),
    ({"progress": 1}, ConfigTypeError, r"progress=1 .*True or False"),
    ({"check": None}, ConfigTypeError, r"check=None"),
]
if not CUDA:
    CONFIG_CASES += [
        ({"amp": "fp16"}, ConfigError, r"amp='fp16' .*needs a CUDA device"),
        ({"device": "cuda:0"}, ConfigError, r"device='cuda:0' .*no CUDA GPU here"),
    ]


@pytest.mark.parametrize("changes,error,words", CONFIG_CASES,
                         ids=[next(iter(c)) + "-" + str(i) for i, (c, _, _) in
                              enumerate(CONFIG_CASES)])
def test_train_config_refuses(changes: dict[str, Any], error: type[Exception],
                              words: str) -> None:
    with pytest.raises(error, match=words) as caught:
        TrainConfig(**changes)
    assert isinstance(caught.value, ValueError)  # ConfigTypeError is also a TypeError
    assert "Fix:" in str(caught.value)


def test_a_field_changed_after_the_config_was_made_is_checked_by_fit() -> None:
    config = _config()
    config.batch_size = 0  # no ZeroDivisionError later: refused when fit starts
    model = _model()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ConfigError, match="batch_size=0"):
        fit(model, _data(), config)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# ----------------------------------------------------------------------------- fit
def _meta_model() -> nn.Module:
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(2, 3))


def _frozen() -> nn.Module:
    model = _model()
    model.requires_grad_(False)
    return model


class _Items:
    """A map-style dataset of given items."""

    def __init__(self, *items: Any) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


# each case: (name, make(tmp_path) -> the call, its files already written, error, words)
FIT_CASES: list[tuple[str, Callable[[Path], Callable[[], Any]], type[Exception], str]] = [
    ("not a module", lambda tmp: partial(fit, "model", _data(), _config()), TypeError,
     r"model must be a torch.nn.Module, got str"),
    ("no parameters", lambda tmp: partial(fit, nn.ReLU(), _data(), _config()), ValueError,
     r"ReLU has no parameters: there is nothing to train"),
    ("frozen", lambda tmp: partial(fit, _frozen(), _data(), _config()), ValueError,
     r"2 parameters, all frozen"),
    ("meta device", lambda tmp: partial(fit, _meta_model(), _data(), _config()), ValueError,
     r"meta device.*'0.weight'.*to_empty"),
    ("empty train set", lambda tmp: partial(fit, _model(), _data(0), _config()), ValueError,
     r"train set is empty"),
    ("not a dataset", lambda tmp: partial(fit, _model(), 42, _config()), TypeError,
     r"train set must be a map-style Dataset.*got int"),
    ("no length", lambda tmp: partial(fit, _model(), iter([]), _config()), TypeError,
     r"train set must be a map-style Dataset"),
    ("bare tensors", lambda tmp: partial(fit, _model(), [torch.zeros(4, 2)] * 3, _config()),
     ValueError, r"each train item must be a tuple \(input, \.\.\., target\).*item 0 is a "
                 r"Tensor"),
    ("one element", lambda tmp: partial(fit, _model(), _Items((torch.zeros(4, 2),)),
                                        _config()),
     ValueError, r"item 0 is a tuple of 1 element"),
    ("strings", lambda tmp: partial(fit, _model(), _Items(("walk", torch.zeros(4, 3))),
                                    _config()),
     ValueError, r"train item 0, element 0: a str"),
    ("shapes differ", lambda tmp: partial(
        fit, _model(), _Items((torch.zeros(4, 2), torch.zeros(4, 3)),
                              (torch.zeros(5, 2), torch.zeros(5, 3))), _config()),
     ValueError, r"train items 0 and 1 differ in shape \(\(4, 2\), \(4, 3\) vs \(5, 2\)"),
    ("val arity", lambda tmp: partial(fit, _model(), _data(), _config(),
                                      val=_Items((torch.zeros(4, 2),) * 3)),
     ValueError, r"val item 0 has 3 elements but the training items have 2"),
    ("config type", lambda tmp: partial(fit, _model(), _data(), {"epochs": 1}), TypeError,
     r"config must be a TrainConfig, got dict"),
    ("loss type", lambda tmp: partial(fit, _model(), _data(), _config(), loss="mse"),
     TypeError, r"loss must be a function or None, got str 'mse'"),
    ("augment type", lambda tmp: partial(fit, _model(), _data(), _config(), augment=True),
     TypeError, r"augment must be a function"),
    ("checkpoint dir missing", lambda tmp: partial(
        fit, _model(), _data(), _config(checkpoint=str(tmp / "missing" / "run.ckpt"))),
     FileNotFoundError, r"checkpoint '.*missing/run.ckpt': the directory .*missing' does not "
                        r"exist.*mkdir -p"),
    ("checkpoint is a dir", lambda tmp: partial(
        fit, _model(), _data(), _config(checkpoint=str(tmp))),
     IsADirectoryError, r"the checkpoint '.*' is a directory"),
    ("log dir missing", lambda tmp: partial(
        fit, _model(), _data(), _config(log=str(tmp / "nowhere" / "log.csv"))),
     FileNotFoundError, r"cannot write the log '.*nowhere/log.csv'"),
    ("resume a non-checkpoint", lambda tmp: partial(fit, _model(), _data(), _config(
        checkpoint=_write(tmp / "other.pt", {"x": 1}), resume=True)),
     ValueError, r"other.pt' is not a symmetrize training checkpoint"),
    ("resume an empty file", lambda tmp: partial(fit, _model(), _data(), _config(
        checkpoint=_write(tmp / "empty.ckpt", None), resume=True)),
     ValueError, r"empty.ckpt' is empty \(0 bytes\)"),
    ("resume garbage", lambda tmp: partial(fit, _model(), _data(), _config(
        checkpoint=_write(tmp / "junk.ckpt", b"not a pickle"), resume=True)),
     ValueError, r"junk.ckpt' cannot be read with torch.load\(weights_only=True\)"),
    ("resume another model", lambda tmp: partial(
        fit, nn.Sequential(nn.Linear(2, 5), nn.Linear(5, 3)), _data(),
        _config(checkpoint=_checkpoint(tmp), resume=True)),
     ValueError, r"run.ckpt' does not fit this model.*Fix: resume with the model"),
    ("resume other settings", lambda tmp: partial(fit, _model(), _data(), _config(
        checkpoint=_checkpoint(tmp), resume=True, batch_size=2, seed=5)),
     ValueError, r"run.ckpt' was written by a run with other settings \(batch_size 4 -> 2; "
                 r"seed 0 -> 5\)"),
    ("evaluate batch", lambda tmp: partial(evaluate, _model(), _data(), _distance, 0),
     ValueError, r"batch_size=0 is not allowed: an integer >= 1"),
    ("evaluate model", lambda tmp: partial(evaluate, None, _data(), _distance, 4),
     TypeError, r"model must be a torch.nn.Module, got NoneType"),
]


def _distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).norm()


def _write(path: Path, content: Any) -> str:
    if content is None:
        path.write_bytes(b"")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return str(path)


def _checkpoint(tmp: Path) -> str:
    """A real checkpoint of ``_model()`` after one epoch with ``_config()``."""
    path = tmp / "run.ckpt"
    fit(_model(), _data(), _config(checkpoint=str(path)))
    return str(path)


@pytest.mark.parametrize("name,make,error,words", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_refuses(name: str, make: Callable[[Path], Callable[[], Any]],
                     error: type[Exception], words: str, tmp_path: Path) -> None:
    call = make(tmp_path)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(error, match=words):
        call()
    # nothing written: no file appeared or changed, no lock or temporary file left
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files


def test_nothing_trains_before_a_path_error() -> None:
    model = _model()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fit(model, _data(), _config(log="/no/such/dir/log.jsonl"))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_resume_with_the_same_settings_continues(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)
    result = fit(_model(), _data(), _config(checkpoint=path, resume=True, epochs=2))
    assert (result.start_step, result.steps, result.epochs_done) == (2, 4, 2)


# ----------------------------------------------------------------------------- finetune_lifter
def _lifter() -> nn.Module:
    from tests.pose_models import TemporalModel

    return TemporalModel(filter_widths=(3,), channels=34)


LIFTER_CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("frames", {"frames": 0}, ValueError, r"frames=0 is not allowed: an integer >= 1 or None"),
    ("cameras", {"cameras": 0}, ValueError, r"cameras=0 is not allowed: an integer >= 1"),
    ("downsample", {"downsample": -2}, ValueError, r"downsample=-2"),
    ("noise nan", {"noise": math.nan}, ValueError, r"noise=nan .*finite number >= 0"),
    ("noise negative", {"noise": -0.1}, ValueError, r"noise=-0.1"),
    ("val_subjects str", {"val_subjects": "S9"}, ValueError,
     r"val_subjects='S9' .*list of subject names"),
    ("val_subjects empty name", {"val_subjects": ["S9", ""]}, ValueError, r"val_subjects"),
    ("data type", {"data": 5}, TypeError, r"data must be a source string.*got int"),
    ("spec type", {"spec": "h36m"}, TypeError, r"spec must be a Spec or None, got str"),
    ("config type", {"config": {"epochs": 1}}, TypeError, r"config must be a TrainConfig"),
    ("conversion type", {"conversion": "regular"}, TypeError,
     r"conversion must be a dict of symmetrize\(\) options"),
    ("load missing", {"load": "missing.pt"}, FileNotFoundError, r"load='missing.pt': no such"),
    ("variant", {"variant": "mirror"}, ValueError, r"variant must be one of chiral"),
    ("checkpoint dir", {"config": TrainConfig(checkpoint="/no/such/dir/run.ckpt")},
     FileNotFoundError, r"checkpoint '/no/such/dir/run.ckpt': the directory"),
    ("data missing", {"data": "/no/such/takes"}, FileNotFoundError, r"no such file or folder"),
]


@pytest.mark.parametrize("name,kwargs,error,words", LIFTER_CASES,
                         ids=[c[0] for c in LIFTER_CASES])
def test_finetune_lifter_refuses(name: str, kwargs: dict[str, Any], error: type[Exception],
                                 words: str) -> None:
    from symmetrize.finetune import finetune_lifter

    spec = kwargs.pop("spec", None)
    with pytest.raises(error, match=words):
        finetune_lifter(_lifter(), spec, **{"data": "synthetic:1", **kwargs})


def test_finetune_lifter_refuses_a_log_over_the_model_it_loads(tmp_path: Path) -> None:
    from symmetrize.finetune import finetune_lifter

    target = tmp_path / "chiral.jsonl"
    target.write_bytes(b"precious")
    with pytest.raises(ValueError, match=r"the log '.*chiral.jsonl' is also the model to load"):
        finetune_lifter(_lifter(), data="synthetic:1", load=str(target),
                        config=replace(TrainConfig(), log=str(target)))
    assert target.read_bytes() == b"precious"


# ----------------------------------------------------------------------------- run_demo
DEMO_CASES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"epochs": 0}, ValueError, r"epochs=0 is not allowed: an integer >= 1"),
    ({"epochs": -1}, ValueError, r"epochs=-1"),
    ({"seed": -1}, ValueError, r"seed=-1 is not allowed"),
    ({"quick": "yes"}, TypeError, r"quick must be True or False"),
    ({"data": 7}, TypeError, r"data must be a source string"),
    ({"data": "/no/such/takes"}, FileNotFoundError, r"no such file or folder"),
]


@pytest.mark.parametrize("kwargs,error,words", DEMO_CASES,
                         ids=[str(c[0]) for c in DEMO_CASES])
def test_run_demo_refuses_before_printing(kwargs: dict[str, Any], error: type[Exception],
                                          words: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from symmetrize.demo import run_demo

    with pytest.raises(error, match=words):
        run_demo(**{"quick": True, "progress": False, **kwargs})
    assert capsys.readouterr().out == ""  # refused before any work


# ----------------------------------------------------------------------------- the pieces
def test_schedules_logs_and_the_environment_are_checked(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from symmetrize.train import bn_momentum, set_bn_momentum
    from symmetrize.train.distributed import setup_distributed
    from symmetrize.train.progress import MetricLog

    with pytest.raises(ValueError, match=r"bn_momentum start=0 is not allowed: a number in"):
        bn_momentum(0, 10, start=0)
    with pytest.raises(ValueError, match=r"bn_momentum end=nan"):
        bn_momentum(0, 10, end=math.nan)
    with pytest.raises(ValueError, match=r"momentum=2 is not allowed: a number in \[0, 1\]"):
        set_bn_momentum(nn.BatchNorm1d(3), 2)
    with pytest.raises(ValueError, match=r"log file '.*run.txt': the suffix must be"):
        MetricLog(tmp_path / "run.txt")
    old = tmp_path / "old.csv"
    old.write_text("epoch,step,loss,lr\n1,1,0.5,0.001\n")  # an older log without 'val'
    with pytest.raises(ValueError, match=r"'.*old.csv' has the columns epoch,step,loss,lr, "
                                         r"this run writes epoch,step,loss,lr,val"):
        MetricLog(old, resume=True)
    log = MetricLog(tmp_path / "new.csv")
    with pytest.raises(ValueError, match=r"no column for \['grad'\]"):  # never dropped silently
        log.write({"epoch": 1, "step": 1, "grad": 3.0})
    log.close()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match=r"WORLD_SIZE='two' is not allowed.*torchrun"):
        setup_distributed(torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match=r"RANK=5 is not allowed with WORLD_SIZE=2: 0 \.\. 1"):
        setup_distributed(torch.device("cpu"))
