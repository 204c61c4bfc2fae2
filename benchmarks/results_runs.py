"""Running the study's training tasks (``results_protocol.tasks``): one process per job, each
with its own torch threads, every finished task cached as JSON so an interrupted study resumes
where it stopped; then the records assembled into the tables' figures."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import lift_3d
import torch
from results_protocol import EFFICIENCY_MODEL, MODELS, Task

_SPLITS: dict[tuple[str, bool], Any] = {}  # per process: the takes, read once


def _split(data: str, quick: bool) -> Any:
    if (data, quick) not in _SPLITS:
        _SPLITS[data, quick] = lift_3d.load_split(data, quick)
    return _SPLITS[data, quick]


def work(task: Task, data: str, quick: bool, device: str, log: Path | None = None
         ) -> dict[str, Any]:
    """Train and score one task (``lift_3d.train_and_score``) on its share of the takes,
    logging its steps and evaluations to ``log`` when given."""
    lift_3d.use_protocol(task.protocol)
    split, source = _split(data, quick)
    part = split.subset(task.fraction, task.seed) if task.fraction < 1 else split
    started = time.time()
    record = lift_3d.train_and_score(task.model, task.training, task.seed, part, quick, device,
                                     None if log is None else str(log))
    record.update(model=task.model, training=task.training, seed=task.seed,
                  fraction=task.fraction, protocol=task.protocol, data=source, pid=os.getpid(),
                  started=started, threads=torch.get_num_threads())
    return record


def _init_worker(threads: int, parent: int | None = None) -> None:
    """Set the worker's torch threads; with ``parent`` (a pid), exit when that process is gone.

    A killed ``results.py`` (SIGKILL, an out-of-memory kill) cannot stop its pool, so its
    workers would go on training and holding their tasks' log locks, and a restarted study
    would then fail on those locks."""
    torch.set_num_threads(threads)
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="exit-with-parent",
                         daemon=True).start()


def _exit_with(parent: int, every: float = 0.5) -> None:
    """Poll until this process's parent is no longer ``parent``, then exit at once."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)  # no cleanup: the task's partial record is worthless, its cache file unwritten


def run_tasks(tasks: list[Task], data: str, *, quick: bool, device: str, jobs: int,
              threads: int, cache: Path | None) -> tuple[dict[str, dict[str, Any]],
                                                         dict[str, float]]:
    """Every task's record (from ``cache`` when it holds one), and the study's wall and CPU
    seconds (this process and its workers). ``jobs`` worker processes of ``threads`` torch
    threads each (``jobs=1``: in this process)."""
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for task in tasks:
        cached = cache / f"{task.key}.json" if cache is not None else None
        if cached is not None and cached.is_file():
            records[task.key] = json.loads(cached.read_text())
        else:
            todo.append(task)
    start = time.perf_counter()
    cpu_start = _cpu_seconds()
    print(f"[lifting] {len(todo)} trainings to run ({len(tasks) - len(todo)} cached), "
          f"{jobs} job(s) x {threads} thread(s)", file=sys.stderr, flush=True)
    done = 0

    def finished(task: Task, record: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        records[task.key] = record
        if cache is not None:
            _write_json(cache / f"{task.key}.json", record)
        print(f"[lifting] {done}/{len(todo)} {task.key}: test MPJPE "
              f"{record['test']['mpjpe_mm']:.1f} mm, best step {record['best_step']} of "
              f"{record['steps']} ({record['stopped']}), {record['train_s']:.0f} s "
              f"(elapsed {time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)

    if jobs == 1 or len(todo) <= 1:
        _init_worker(threads)
        for task in todo:
            finished(task, work(task, data, quick, device, _log(cache, task)))
    else:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context,
                                                    initializer=_init_worker,
                                                    initargs=(threads, os.getpid())) as pool:
            futures = {pool.submit(work, t, data, quick, device, _log(cache, t)): t
                       for t in todo}
            for future in concurrent.futures.as_completed(futures):
                try:
                    record = future.result()
                except Exception as error:
                    for pending in futures:  # do not train the queue only to drop its results
                        pending.cancel()
                    raise RuntimeError(
                        f"training {futures[future].key} failed ({type(error).__name__}: "
                        f"{error}); the {done} trainings finished before it are "
                        + ("cached: rerun to resume" if cache is not None else "lost (no "
                           "--cache)")) from error
                finished(futures[future], record)
    return records, {"wall_s": time.perf_counter() - start, "cpu_s": _cpu_seconds() - cpu_start,
                     "trainings": len(todo), "cached": len(tasks) - len(todo)}


def _log(cache: Path | None, task: Task) -> Path | None:
    """Where a task logs its steps (``<cache>/<key>.log.jsonl``; none without a cache)."""
    if cache is None:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    return cache / f"{task.key}.log.jsonl"


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _write_json(path: Path, value: Any) -> None:
    from symmetrize.atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value)
    write_atomic(path, lambda f: f.write(text.encode()))


def assemble(tasks: list[Task], records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures of the tables: ``lifting[model][row]`` and ``efficiency[fraction][row]``,
    each a list of per-seed row records (``lift_3d.row_scores``); the efficiency study's
    fraction 1 is the accuracy run of :data:`EFFICIENCY_MODEL`."""
    by_run: dict[tuple[str, float, int], dict[str, dict[str, Any]]] = {}
    for task in tasks:
        by_run.setdefault((task.model, task.fraction, task.seed), {})[task.training] = \
            records[task.key]
    lifting: dict[str, dict[str, list]] = {}
    efficiency: dict[str, dict[str, list]] = {}
    for (model, fraction, seed), runs in sorted(by_run.items()):
        for row in lift_3d.rows(model):
            scored = lift_3d.row_scores(runs, row)
            if fraction == 1:
                lifting.setdefault(model, {}).setdefault(row, []).append(scored)
            if model == EFFICIENCY_MODEL:
                efficiency.setdefault(f"{fraction:g}", {}).setdefault(row, []).append(scored)
    if not any(float(f) < 1 for f in efficiency):
        efficiency = {}
    order = {m: k for k, m in enumerate(MODELS)}
    return {"lifting": dict(sorted(lifting.items(), key=lambda kv: order.get(kv[0], 9))),
            "efficiency": dict(sorted(efficiency.items(), key=lambda kv: float(kv[0])))}
