"""``fit``: fine-tune a (converted) model on a pose dataset, safely interruptible.

The batch order of every epoch is a function of the seed and the epoch alone, checkpoints carry
the model, optimiser, scheduler, the position inside the epoch and every random state, so a run
killed at any moment and resumed from its last checkpoint reaches the weights an uninterrupted
run reaches.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from symmetrize.atomic import check_writable, clean_leftovers, file_lock
from symmetrize.metrics import mpjpe
from symmetrize.train.batches import check_callables, check_dataset, check_model, collate, order
from symmetrize.train.checkpoint import restore
from symmetrize.train.config import TrainConfig
from symmetrize.train.distributed import Distributed, setup_distributed
from symmetrize.train.early_stop import EarlyStopping, best_path
from symmetrize.train.engine import Augment, Engine, Loss
from symmetrize.train.progress import MetricLog
from symmetrize.train.schedule import bn_momentum, set_bn_momentum

__all__ = ["NotEquivariantError", "TrainConfig", "TrainResult", "fit"]

Predict = Callable[[nn.Module, Sequence[torch.Tensor]], torch.Tensor]


class NotEquivariantError(ValueError):
    """The model failed :func:`~symmetrize.check` before training."""


@dataclass
class TrainResult:
    """What :func:`fit` did: per-epoch mean losses, validation metrics, and why it stopped.
    A resumed run's result carries the history from its checkpoint; ``start_step`` is the step
    it resumed at (0 for a fresh run), so ``steps - start_step`` steps were taken by this call.
    ``val_steps[i]`` is the step of evaluation ``val_metric[i]`` (per epoch, or every
    ``config.eval_every`` steps); ``best_step``/``best_metric`` the best evaluation so far."""

    epochs_done: int = 0
    steps: int = 0
    train_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    stopped: str = "completed"
    seconds: float = 0.0
    start_step: int = 0
    val_steps: list[int] = field(default_factory=list)
    best_step: int | None = None
    best_metric: float | None = None

    @property
    def val_curve(self) -> list[tuple[int, float]]:
        """Every evaluation as ``(step, value)``, for learning curves."""
        return list(zip(self.val_steps, self.val_metric))


def fit(model: nn.Module, train: Dataset, config: TrainConfig | None = None, *,
        loss: Loss | None = None, val: Dataset | None = None, metric: Loss | None = None,
        spec: Any = None, augment: Augment | None = None,
        predict: Predict | None = None) -> TrainResult:
    """Train ``model`` in place on ``train`` (items ``(input, ..., target)`` of tensors).

    Args:
        model: the network (a converted one, or any model with ``check=False``).
        train: the training set; each item a tuple of tensors, the last one the target.
        config: see :class:`TrainConfig`.
        loss: ``loss(prediction, target)``; default MPJPE.
        val: evaluated after every epoch with ``metric`` (default MPJPE), in eval mode.
        spec: the model's Spec for the pre-training check (a converted model's own by default).
        augment: ``augment(batch, generator) -> batch`` on every training batch (e.g.
            :class:`~symmetrize.data.augment.BatchFlip`); the generator is seeded from the seed
            and the step, so a resumed run draws what an uninterrupted one draws.
        predict: ``predict(model, inputs)`` for validation (e.g. flip test-time averaging);
            default ``model(*inputs)``.

    Returns:
        A :class:`TrainResult`. Under ``torchrun`` every process trains a DistributedDataParallel
        replica on its share of each batch order; the main process writes the checkpoint, the
        log and the progress bar, holding their lock files (``<file>.lock``) for the run.

    Resuming (``config.resume``) is idempotent: a checkpoint that already reached
    ``max_steps`` or ``epochs`` trains nothing and writes nothing, and the log keeps no rows of
    steps that are run again.

    Raises:
        ConfigError: a bad option (checked again here: a field may have changed).
        FileNotFoundError, IsADirectoryError, PermissionError: the checkpoint or the log cannot
            be written (checked before any work).
        FileLockedError: another run is writing the same checkpoint or log.
        NotEquivariantError: ``config.check`` and the model fails the check.
        TypeError, ValueError: a bad model (no trainable parameters, meta tensors), an empty
            dataset or a bad item, a checkpoint of another run.
    """
    if config is None:
        config = TrainConfig()
    elif not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    check_callables(loss=loss, metric=metric, augment=augment, predict=predict)
    check_model(model)
    n, arity = check_dataset(train, "train")
    if val is not None:
        check_dataset(val, "val", arity)
    elif config.patience is not None or config.keep_best:
        raise ValueError(f"config.patience={config.patience!r}, keep_best={config.keep_best!r} "
                         "need a validation set to track. Fix: pass val=..., or drop patience "
                         "and keep_best")
    loss_fn, metric_fn = loss or mpjpe, metric or mpjpe
    device = config.resolve_device()
    env = setup_distributed(device)
    started = time.monotonic()
    try:
        with _files(config, env):
            model.to(device)
            if config.check:
                _check_first(model, spec, train, device)
            torch.manual_seed(config.seed)
            optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
            scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
            progress = {"epoch": 0, "batch": 0, "step": 0}
            result = TrainResult()
            saved = None
            if config.resume and Path(config.checkpoint).exists():  # type: ignore[arg-type]
                saved = restore(config.checkpoint, model=model,  # type: ignore[arg-type]
                                optimizer=optimizer, scheduler=scheduler,
                                config=config.to_dict(), world_size=env.world_size)
                _restore_result(result, saved)
            engine = Engine(model, optimizer, scheduler, config, env, device, loss_fn, augment)
            engine.early_stop = EarlyStopping(config.patience, config.min_delta, config.keep_best)
            if saved is not None and saved["extra"].get("early_stop"):
                engine.early_stop.load_state_dict(saved["extra"]["early_stop"])
            if saved is not None:
                progress = dict(saved["progress"])
                engine.losses = list(saved["extra"].get("epoch_losses") or [])
                if engine.scaler is not None and saved["extra"].get("scaler"):
                    engine.scaler.load_state_dict(saved["extra"]["scaler"])
            log = MetricLog(config.log if env.is_main else None, resume=saved is not None,
                            keep_bytes=_log_bytes(saved, config.log))
            engine.log, engine.result = log, result
            try:
                _run(engine, train, n, val, (metric_fn, predict), progress, result, log,
                     started)
            finally:
                log.close()
            _keep_best(engine)
        result.seconds = time.monotonic() - started
        return result
    finally:
        env.close()


@contextlib.contextmanager
def _files(config: TrainConfig, env: Distributed) -> Iterator[None]:
    """The main process checks that the checkpoint and the log can be written and holds their
    locks for the run; leftovers of a killed checkpoint write are removed."""
    with contextlib.ExitStack() as stack:
        if env.is_main:
            for path, what in ((config.checkpoint, "checkpoint"), (config.log, "log")):
                if path is not None:
                    check_writable(path, what)
                    stack.enter_context(file_lock(path))
            if config.checkpoint is not None:
                clean_leftovers(config.checkpoint)
        yield


def _restore_result(result: TrainResult, saved: dict[str, Any]) -> None:
    progress = saved["progress"]
    result.steps = result.start_step = progress["step"]
    result.epochs_done = progress["epoch"]
    history = saved["extra"].get("result") or {}
    for name in (f.name for f in fields(TrainResult)):
        if name in history and name not in ("steps", "epochs_done", "seconds", "start_step",
                                            "stopped"):
            setattr(result, name, history[name])


def _keep_best(engine: Engine) -> None:
    """With ``keep_best``: the best weights back into the model, and (main process, with a
    checkpoint) into the checkpoint's ``best`` sibling."""
    config = engine.config
    if not (config.keep_best and engine.early_stop.restore(engine.model)):
        return
    if config.checkpoint is not None and engine.env.is_main:
        from symmetrize.atomic import write_atomic

        weights = engine.early_stop.best_weights
        write_atomic(best_path(config.checkpoint), lambda f: torch.save(weights, f))


def _log_bytes(saved: dict[str, Any] | None, log: str | None) -> int | None:
    """How much of ``log`` the checkpoint covers (``None``: unknown, append)."""
    if saved is None or log is None:
        return None
    entry = saved["extra"].get("log") or {}
    same = entry.get("path") == os.path.abspath(os.fspath(log))
    return entry.get("bytes") if same else None


# ----------------------------------------------------------------------------- the loop
def _run(engine: Engine, train: Dataset, n: int, val: Dataset | None,
         scoring: tuple[Loss, Predict | None], progress: dict[str, Any], result: TrainResult,
         log: MetricLog, started: float) -> None:
    config, env = engine.config, engine.env
    per_step = config.batch_size * env.world_size
    n_batches = max(n // per_step, 1) if env.enabled else math.ceil(n / config.batch_size)
    if config.max_steps is not None and progress["step"] >= config.max_steps:
        result.stopped = "max_steps"  # a resumed run that is done: nothing to train or write
        return
    if engine.early_stop.done:
        result.stopped = "early_stop"  # resumed after stopping early: nothing left to do
        return
    for epoch in range(progress["epoch"], config.epochs):
        if config.bn_momentum is not None:
            set_bn_momentum(engine.model, bn_momentum(epoch, config.epochs, *config.bn_momentum))
        samples = order(n, config.seed, epoch)
        engine.model.train()
        if progress["batch"] == 0:
            engine.losses = []
        losses = engine.losses
        bar = _bar(n_batches, progress["batch"], epoch, config, env)
        for b in range(progress["batch"], n_batches):
            chunk = samples[b * per_step:(b + 1) * per_step]
            mine = chunk[env.rank::env.world_size] if env.enabled else chunk
            value = engine.step(collate(train, mine, engine.device), progress["step"])
            losses.append(value)
            progress = {"epoch": epoch, "batch": b + 1, "step": progress["step"] + 1}
            result.steps = progress["step"]
            log.write({"epoch": epoch + 1, "step": progress["step"], "loss": value,
                       "lr": engine.optimizer.param_groups[0]["lr"]})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}")
            stop = _should_stop(config, progress["step"], started)
            if (val is not None and config.eval_every
                    and progress["step"] % config.eval_every == 0):
                record = {"epoch": epoch + 1, "step": progress["step"]}
                if _validate(engine, val, scoring, progress["step"], record):
                    stop = stop or "early_stop"
                log.write(record)
            if stop or (config.checkpoint_every and progress["step"] % config.checkpoint_every
                        == 0):
                engine.checkpoint(progress)
            if stop:
                env.average_buffers(engine.model)
                result.stopped = stop
                if bar is not None:
                    bar.close()
                return
        if bar is not None:
            bar.close()
        engine.scheduler.step()
        env.average_buffers(engine.model)
        progress = {"epoch": epoch + 1, "batch": 0, "step": progress["step"]}
        mean = env.all_mean(sum(losses) / max(len(losses), 1), engine.device)
        result.train_loss.append(mean)
        record: dict[str, Any] = {"epoch": epoch + 1, "step": progress["step"], "loss": mean,
                                  "lr": engine.optimizer.param_groups[0]["lr"]}
        stop = val is not None and not config.eval_every and _validate(
            engine, val, scoring, progress["step"], record)
        log.write(record)
        result.epochs_done = epoch + 1
        engine.checkpoint(progress)
        if stop:
            result.stopped = "early_stop"
            return


def _validate(engine: Engine, val: Dataset, scoring: tuple[Loss, Predict | None], step: int,
              record: dict[str, Any]) -> bool:
    """Evaluate ``val`` at ``step``, record it (result, log ``record``, early stopping); whether
    to stop early."""
    score = evaluate(engine.model, val, scoring[0], engine.config.batch_size, engine.device,
                     scoring[1])
    result, stopper = engine.result, engine.early_stop
    stop = stopper.update(step, score, engine.model)
    result.val_metric.append(score)
    result.val_steps.append(step)
    result.best_step, result.best_metric = stopper.best_step, stopper.best
    record["val"] = score
    return stop


def evaluate(model: nn.Module, data: Dataset, metric: Loss, batch_size: int,
             device: torch.device | str = "cpu", predict: Predict | None = None) -> float:
    """The mean of ``metric(prediction, target)`` over ``data`` in eval mode (weighted by batch
    size), predictions from ``predict(model, inputs)`` (default ``model(*inputs)``); the
    model's train flag is restored."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not allowed: an integer >= 1")
    check_callables(metric=metric, predict=predict)
    n, _ = check_dataset(data, "val")
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                *inputs, target = collate(data, torch.arange(start, min(start + batch_size, n)),
                                          torch.device(device))
                prediction = predict(model, inputs) if predict is not None else model(*inputs)
                total += metric(prediction.float(), target.float()).item() * len(target)
                count += len(target)
    finally:
        model.train(was_training)
    return total / count


# ----------------------------------------------------------------------------- pieces


def _should_stop(config: TrainConfig, step: int, started: float) -> str | None:
    if config.max_steps is not None and step >= config.max_steps:
        return "max_steps"
    if config.max_minutes is not None and time.monotonic() - started >= 60 * config.max_minutes:
        return "max_minutes"
    return None


def _bar(total: int, done: int, epoch: int, config: TrainConfig, env: Distributed) -> Any:
    if not (config.progress and env.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"epoch {epoch + 1}/{config.epochs}",
                dynamic_ncols=True, leave=False)


def _check_first(model: nn.Module, spec: Any, train: Dataset, device: torch.device) -> None:
    from symmetrize.passes.check import check

    *inputs, _ = collate(train, torch.arange(min(8, len(train))), device)  # type: ignore[arg-type]
    try:
        result = check(model, spec, tuple(inputs), n_inputs=2, dtypes=(torch.float64,))
    except ValueError as err:
        raise NotEquivariantError(f"cannot check the model before training: {err}. Fix: pass "
                                  "the Spec (fit(..., spec=spec)) or config.check=False") from None
    if not result.case("eval", torch.float64).passed or \
            not result.case("train", torch.float64).passed:
        raise NotEquivariantError(
            f"the model is not equivariant, so training it as a chiral model would waste the "
            f"run:\n{result}\nFix: convert it with symmetrize(...), or pass config.check=False "
            "to train it as it is")
