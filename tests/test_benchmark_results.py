"""benchmarks/results.py: the ``--quick`` run has every section, table and plot with finite
figures; its early-stopped runs keep their best step; its JSON re-renders the same Markdown; an
interrupted study resumes from its cache; the verdict rule and the options."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "results.py"
CMU = ROOT.parent / "shared" / "data" / "cmu"
for _path in (ROOT / "benchmarks", ROOT / "examples"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import lift_3d
import results_protocol
import results_tables

from symmetrize import Spec, symmetrize

HEADINGS = ("## Lifting at the plateau", "## Data efficiency", "## The issue's targets",
            "## What limits the error", "## Run times", "## Speed", "## Other applications")
NUMBER = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:e[-+]?\d+)?", re.IGNORECASE)
PNG = b"\x89PNG\r\n\x1a\n"


def _run(out: Path, *extra: str) -> tuple[str, str, str]:
    """``results.py --quick`` on the CPU writing ``out/RESULTS.md``: stdout, stderr, JSON."""
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--device", "cpu",
                             "--out", str(out / "RESULTS.md"), "--json", str(out / "r.json"),
                             *extra], capture_output=True, text=True, timeout=1800, cwd=ROOT,
                            check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout, result.stderr, (out / "r.json").read_text()


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, str]:
    """One ``--quick`` run of every section, shared by the tests of this module."""
    out = tmp_path_factory.mktemp("results")
    return (out, *_run(out))


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every Markdown table: its rows (header and separator included) as lists of cells."""
    tables: list[list[list[str]]] = []
    previous = False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            (tables[-1].append(cells) if previous else tables.append([cells]))
        previous = line.startswith("|")
    return tables


def test_markdown_has_every_section_table_and_plot(quick: tuple[Path, str, str, str]) -> None:
    out, stdout, _, _ = quick
    markdown = (out / "RESULTS.md").read_text()
    assert stdout.strip() == markdown.strip()  # stdout carries the Markdown only
    header = markdown.splitlines()[2]
    for part in ("Generated", "torch", "CPU", "seeds 0", "wall time",
                 "of training-process CPU time in all"):
        assert part in header, header
    positions = [markdown.index(h) for h in HEADINGS]
    assert positions == sorted(positions)
    assert "**Protocol.**" in markdown and "**`--quick`" in markdown
    tables = _tables(markdown)
    assert len(tables) >= 10
    for table in tables:
        assert set("".join(table[1])) <= set("-:"), table[1]
        for row in table[2:]:
            assert len(row) == len(table[0]), row
            numbers = [float(n.replace(",", "")) for c in row[1:] for n in NUMBER.findall(c)]
            assert all(math.isfinite(n) for n in numbers), row
            assert not any(re.search(r"\b(nan|inf)\b", c, re.IGNORECASE) for c in row), row
    assert markdown.count("**undecided**") >= 8  # one seed: no verdict is claimed
    for name in ("learning_curves.png", "data_efficiency.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and 1000 < len(data) < 300_000
        assert f"]({name})" in markdown


def test_runs_stop_early_and_keep_their_best_step(quick: tuple[Path, str, str, str]) -> None:
    figures = json.loads(quick[3])
    assert set(figures["lifting"]) == set(results_protocol.MODELS)
    assert set(figures["efficiency"]) == {"0.25", "1"}
    tasks = results_protocol.tasks(results_protocol.MODELS, [0.25], [0], True)
    records = figures["study"]["records"]
    assert len(records) == len(tasks) == figures["study"]["cost"]["trainings"]
    every = lift_3d.QUICK["eval_every"]
    for r in records:
        steps, errors = zip(*r["curve"])
        assert all(s % every == 0 for s in steps) and steps[-1] <= r["steps"]
        assert dict(r["curve"])[r["best_step"]] == min(errors)
        assert r["stopped"] in ("early_stop", "max_steps")
        assert r["train_s"] > 0 and r["cpu_s"] > 0 and r["to_plateau_s"] <= r["train_s"]
    for verdict in figures["verdicts"]:
        assert verdict["verdict"] == "undecided" and verdict["runs"] == 1


def test_parameter_counts_match_the_models(quick: tuple[Path, str, str, str]) -> None:
    speed = json.loads(quick[3])["speed"]
    assert set(speed) == set(results_protocol.MODELS)
    for model, case in speed.items():
        torch.manual_seed(0)
        plain = lift_3d.LIFTERS[model].build(True)
        example = torch.zeros(8, plain.receptive_field(), 17, 2)
        assert case["parameters_plain"] == sum(p.numel() for p in plain.parameters())
        for hidden, count in case["parameters_chiral"].items():
            chiral = symmetrize(plain, Spec.preset("h36m"), (example,), hidden=hidden,
                                check=False)
            assert count == sum(p.numel() for p in chiral.parameters())
            assert 0.4 < count / case["parameters_plain"] < 0.6
        assert case["parameters_exported"] == case["parameters_plain"]
        assert case["timings"]["plain inference"]["ratio"] == 1.0
        assert all(t["ms"] > 0 for t in case["timings"].values())


def test_render_rewrites_the_same_markdown(quick: tuple[Path, str, str, str],
                                           tmp_path: Path) -> None:
    out = quick[0]
    result = subprocess.run([sys.executable, str(SCRIPT), "--render", str(out / "r.json"),
                             "--out", str(tmp_path / "RESULTS.md")], capture_output=True,
                            text=True, timeout=300, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "RESULTS.md").read_text() == (out / "RESULTS.md").read_text()
    assert (tmp_path / "learning_curves.png").is_file()


def test_procedural_fallback_and_resume_from_the_cache(tmp_path: Path) -> None:
    extra = ("--only", "lifting", "--models", "tcn27", "--data", str(tmp_path / "absent"),
             "--cache", str(tmp_path / "cache"))
    first, err, text = _run(tmp_path / "a", *extra)
    assert "not found, so every application uses procedural motion" in first
    assert "## Speed" not in first and "## Data efficiency" not in first
    assert len(list((tmp_path / "cache").glob("tcn27-*-s0-f1.json"))) == 4
    again, err, text_again = _run(tmp_path / "b", *extra)
    assert "0 trainings to run (4 cached)" in err
    strip = re.compile(r"^Generated .*$|^Command: .*$", re.MULTILINE)
    assert strip.sub("", again) == strip.sub("", first)
    assert json.loads(text_again)["lifting"] == json.loads(text)["lifting"]


def test_verdict_rule_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    verdict = results_tables.verdict
    assert verdict([10.0, 12.0], [20.0, 22.0], higher_is_better=False) == "wins"
    assert verdict([10.0, 12.0], [20.0, 22.0], higher_is_better=True) == "loses"
    assert verdict([10.0, 14.0], [12.0, 16.0], higher_is_better=False) == "ties"
    assert verdict([10.0], [20.0], higher_is_better=False) == "undecided"
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import results

    args = results.parse_args(["--only", "accuracy", "--device", "cpu"])
    assert args.sections == ["lifting", "forecasting", "actions"] and args.seeds == [0, 1, 2]
    assert args.fractions == [0.1, 0.25, 0.5] and args.jobs * args.threads >= 1
    with pytest.raises(SystemExit, match="^2$"):  # argparse's usage error
        results.parse_args(["--fractions", "1.0"])
    assert "--fractions [1.0]: each must lie in (0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="^2$"):
        results.parse_args(["--only", "efficiency", "--models", "tcn81"])
    assert "the efficiency section trains tcn27: add it to --models" in capsys.readouterr().err
    tasks = results_protocol.tasks(["tcn27", "poseformer"], [0.5], [0, 1], True)
    assert [(t.model, t.fraction) for t in tasks[:16]] == [("tcn27", 1.0)] * 8 + \
        [("tcn27", 0.5)] * 8  # the efficiency model's runs first
    assert len(tasks) == 2 * (3 + 4) + 2 * 4 and len({t.key for t in tasks}) == len(tasks)
    plateau = results_protocol.tasks(["tcn27"], [], [0], False, "plateau")
    assert [t.key for t in plateau][:2] == ["tcn27-plain-s0-f1-plateau",
                                            "tcn27-plain-flip-s0-f1-plateau"]
    assert tasks[0].key == "tcn27-plain-s0-f1"  # the default protocol keeps earlier caches


def test_protocols_differ_only_in_decay_and_patience() -> None:
    hour, plateau = lift_3d.PROTOCOLS["hour"], lift_3d.PROTOCOLS["plateau"]
    assert {k for k in hour if hour[k] != plateau[k]} == {"lr_half_life", "patience"}
    assert (hour["lr_half_life"], hour["patience"]) == (300, 5)
    try:
        lift_3d.use_protocol("plateau")
        assert lift_3d.PROTOCOL == plateau
        assert "halved every 500 steps" in results_protocol.protocol_paragraph(False, 3, [])
    finally:
        lift_3d.use_protocol("hour")
    assert "halved every 300 steps" in results_protocol.protocol_paragraph(False, 3, [])
    with pytest.raises(ValueError, match="unknown protocol 'fast'; the protocols are 'hour'"):
        lift_3d.use_protocol("fast")


def _figures(models: dict[str, int], *, quick: bool = False, section: str | None = None,
             argv: tuple[str, ...] = (), protocol: str | None = None) -> dict:
    """Minimal figures of a run: each lifter's one row with ``n`` per-seed records."""
    records = [{"model": m, "training": "plain", "seed": s, "fraction": 1.0, "cpu_s": 1.0}
               for m, n in models.items() for s in range(n)]
    figures = {"wall_s": {"lifting + efficiency": 10.0},
               "lifting": {m: {"plain": [{"seed": s} for s in range(n)]}
                           for m, n in models.items()},
               "study": {"cost": {"wall_s": 10.0, "cpu_s": 5.0, "trainings": len(records),
                                  "cached": 0}, "records": records},
               "meta": {"quick": quick, "seeds": list(range(max(models.values(), default=1))),
                        "models": list(models), "sections": ["lifting"], "fractions": [],
                        "argv": list(argv), "data_found": True}}
    if protocol is not None:  # figures of earlier runs have no protocol: the default one
        figures["meta"]["protocol"] = protocol
    if section:
        figures[section] = {"from": list(argv)}
    return figures


def test_merge_keeps_each_lifter_from_its_fullest_run_and_every_record_once() -> None:
    import results_merge

    a = _figures({"tcn27": 3}, section="efficiency", argv=("--models", "tcn27"))
    b = _figures({"tcn27": 1, "tcn81": 1}, section="speed", argv=("--seeds", "0"))
    merged = results_merge.merge([a, b])
    assert {m: len(rows["plain"]) for m, rows in merged["lifting"].items()} == \
        {"tcn27": 3, "tcn81": 1}
    assert merged["meta"]["seeds_per_model"] == {"tcn27": 3, "tcn81": 1}
    assert merged["efficiency"] == {"from": ["--models", "tcn27"]}
    assert merged["speed"] == {"from": ["--seeds", "0"]}
    assert len(merged["study"]["records"]) == 4  # tcn27 seed 0 counted once
    assert merged["study"]["cost"]["cpu_s"] == 10.0
    assert merged["meta"]["commands"] == [["--models", "tcn27"], ["--seeds", "0"]]
    assert merged["wall_s"] == {"lifting + efficiency": 20.0}


@pytest.mark.parametrize(("runs", "message"), [
    ([], "at least one run"),
    ([{"lifting": {}}], "run 0 has no 'meta'"),
    ([_figures({"tcn27": 1}), _figures({"tcn27": 1}, quick=True)], "--quick figures"),
    ([_figures({"tcn27": 1}), _figures({"tcn27": 1}, protocol="plateau")],
     "runs of different protocols (hour, plateau)"),
])
def test_merge_refuses_what_it_cannot_merge(runs: list, message: str) -> None:
    import results_merge

    with pytest.raises(ValueError, match=re.escape(message)):
        results_merge.merge(runs)


def test_render_merges_runs_and_names_every_command(quick: tuple[Path, str, str, str],
                                                    tmp_path: Path) -> None:
    out = quick[0]
    result = subprocess.run([sys.executable, str(SCRIPT), "--render", str(out / "r.json"),
                             str(out / "r.json"), "--out", str(tmp_path / "RESULTS.md")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    merged = (tmp_path / "RESULTS.md").read_text()
    assert "Commands (merged with `--render`): " in merged
    body = re.compile(r"^Generated .*$|^Command.*$", re.MULTILINE)
    assert body.sub("", merged) == body.sub("", (out / "RESULTS.md").read_text())


def test_a_failed_training_stops_the_study_at_once_and_names_itself(tmp_path: Path) -> None:
    import results_runs

    tasks = [results_protocol.Task("no-such-lifter", "plain", seed, 1.0) for seed in range(4)]
    with pytest.raises(RuntimeError, match=r"training no-such-lifter-plain-s\d-f1 failed "
                                           r"\(KeyError: .*rerun to resume"):
        results_runs.run_tasks(tasks, str(tmp_path / "absent"), quick=True, device="cpu",
                               jobs=2, threads=1, cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.json"))


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_a_worker_exits_when_the_study_is_killed(tmp_path: Path) -> None:
    paths = [str(ROOT / "benchmarks"), str(ROOT / "examples"), str(ROOT)]
    worker = ("import os, sys, time; sys.path[:0] = %r; import results_runs; "
              "results_runs._init_worker(1, os.getppid()); print('ready', flush=True); "
              "time.sleep(120)" % paths)
    study = ("import subprocess, sys, time; w = subprocess.Popen([sys.executable, '-c', %r]); "
             "print(w.pid, flush=True); time.sleep(120)" % worker)
    parent = subprocess.Popen([sys.executable, "-c", study], stdout=subprocess.PIPE, text=True)
    pid = None
    try:
        assert parent.stdout is not None
        lines = sorted(parent.stdout.readline().strip() for _ in range(2))  # pid, "ready"
        assert lines[1] == "ready", lines
        pid = int(lines[0])
        assert _alive(pid), "the worker should run while the study does"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), "the worker outlived the killed study"
    finally:
        parent.kill()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
