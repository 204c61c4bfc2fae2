"""Bad input to every ``symmetrize`` subcommand: each case exits with code 2 and prints two
lines, ``symmetrize: error: ...`` naming the option, the value and what is wrong, and
``  hint: ...``; no Python traceback; and nothing is written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from symmetrize.cli import main

ROOT = Path(__file__).resolve().parents[1]
LIFTER = f"{ROOT / 'tests' / 'pose_models.py'}:TemporalModel"
TINY = '''
from torch import nn


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 3)

    def forward(self, x):
        return self.head(x)


def make():
    return Tiny()


class Lifter(nn.Module):
    """A small temporal lifter, (N, 3, 17, 2) -> (N, 1, 17, 3), for quick fine-tuning runs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(34, 32, 3)
        self.relu = nn.ReLU()
        self.head = nn.Conv1d(32, 51, 1)

    def receptive_field(self):
        return 3

    def forward(self, x):
        n, t = x.shape[:2]
        x = self.head(self.relu(self.conv(x.reshape(n, t, -1).permute(0, 2, 1))))
        return x.permute(0, 2, 1).reshape(n, -1, 17, 3)
'''
EXAMPLE = ["--spec", "h36m", "--example", "2,9,17,2"]
FAST = ["--data", "synthetic:1", "--epochs", "1", "--max-steps", "1", "--no-progress"]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with a model factory (tiny.py), a spec file, a plain state dict, a
    garbage file, an empty file and a sub-directory."""
    (tmp_path / "tiny.py").write_text(TINY)
    (tmp_path / "spec.toml").write_text('input = "n t j c"\noutput = "n t j c"\n'
                                        'skeleton = "h36m"\nnegate = [0]\n')
    torch.save({"head.weight": torch.zeros(3, 2), "head.bias": torch.zeros(3)},
               tmp_path / "plain.pt")
    (tmp_path / "garbage.pt").write_bytes(b"this is not a pickle")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("tiny", None)


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()
            and "__pycache__" not in p.parts}


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run the command line; assert exit code 2 and the two-line form; the two lines."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("symmetrize: error: ") and lines[1].startswith("  hint: "), err
    assert len(lines[1]) > len("  hint: ") + 5, err
    return lines


CASES: list[tuple[str, list[str], str]] = [
    # (id, argv, words that must appear in the error line)
    ("no command", [], "the following arguments are required: COMMAND"),
    ("unknown command", ["mirror"], "invalid choice: 'mirror'"),
    # demo
    ("demo epochs 0", ["demo", "--epochs", "0"], "--epochs: '0' is not allowed: an integer >= 1"),
    ("demo epochs word", ["demo", "--epochs", "many"], "'many' is not an integer >= 1"),
    ("demo seed", ["demo", "--seed", "-1"], "--seed: '-1' is not allowed"),
    ("demo data", ["demo", "--data", "no/such/takes", "--quick"], "no such file or folder"),
    # explain
    ("zero size", ["explain", "tiny.py:make", "--spec", "h36m", "--example", "0,9,17,2"],
     "bad --example '0,9,17,2': a size of 0"),
    ("huge example", ["explain", "tiny.py:make", "--spec", "h36m", "--example",
                      "100000,243,17,2"],
     "--example 100000,243,17,2: the conversion would need about"),
    ("negative size", ["explain", "tiny.py:make", "--spec", "h36m", "--example=-2,9"],
     "bad --example '-2,9': not a shape"),
    ("dash value", ["explain", "tiny.py:make", "--spec", "h36m", "--example", "-2,9"],
     "argument --example: expected one argument"),
    ("graph suffix", ["explain", "tiny.py:make", *EXAMPLE, "--graph", "graph.txt"],
     "--graph graph.txt: the suffix must be .dot, .svg or .png"),
    ("graph dir", ["explain", "tiny.py:make", *EXAMPLE, "--graph", "missing/graph.dot"],
     "cannot write the --graph file 'missing/graph.dot': the directory"),
    ("fraction", ["explain", "tiny.py:make", *EXAMPLE, "--negated-fraction", "2"],
     "--negated-fraction: '2' is not allowed: a number in [0, 1]"),
    ("fraction nan", ["explain", "tiny.py:make", *EXAMPLE, "--negated-fraction", "nan"],
     "--negated-fraction: 'nan' is not allowed"),
    ("seed word", ["explain", "tiny.py:make", *EXAMPLE, "--seed", "abc"],
     "--seed: 'abc' is not an integer"),
    ("dtype", ["explain", "tiny.py:make", *EXAMPLE, "--dtype", "float16"],
     "--dtype: invalid choice: 'float16'"),
    # check
    ("check bare", ["check", "tiny.py:make"], "check needs --spec and --example"),
    ("check load dir", ["check", "tiny.py:make", "--load", "folder"],
     "--load folder is a directory"),
    ("check load garbage", ["check", "tiny.py:make", "--load", "garbage.pt"],
     "'garbage.pt' is not a converted-model file that torch.load can read safely"),
    ("check load empty", ["check", "tiny.py:make", "--load", "empty.pt"],
     "'empty.pt' is empty (0 bytes)"),
    ("check load plain", ["check", "tiny.py:make", "--load", "plain.pt"],
     "'plain.pt' is not a converted-model file (format None"),
    ("check both", ["check", "tiny.py:make", "--load", "plain.pt", "--state-dict", "plain.pt"],
     "--state-dict and --load cannot be combined"),
    ("state dict garbage", ["check", "tiny.py:make", *EXAMPLE, "--state-dict", "garbage.pt"],
     "cannot read garbage.pt with torch.load(weights_only=True)"),
    # convert
    ("convert no -o", ["convert", "tiny.py:make", *EXAMPLE],
     "the following arguments are required: -o/--out"),
    ("convert dir missing", ["convert", "tiny.py:make", *EXAMPLE, "-o", "nowhere/x.pt"],
     "cannot write the -o file 'nowhere/x.pt': the directory"),
    ("convert into dir", ["convert", "tiny.py:make", *EXAMPLE, "-o", "folder"],
     "the -o file 'folder' is a directory"),
    ("convert over weights", ["convert", "tiny.py:make", *EXAMPLE, "--state-dict", "plain.pt",
                              "-o", "plain.pt"],
     "-o plain.pt is also the --state-dict input"),
    ("convert over factory", ["convert", "tiny.py:make", *EXAMPLE, "-o", "tiny.py"],
     "-o tiny.py is also the MODULE:FACTORY input"),
    ("convert over spec", ["convert", "tiny.py:make", "--spec", "spec.toml", "--example",
                           "2,9,17,2", "-o", "spec.toml"],
     "-o spec.toml is also the --spec input"),
    # finetune: options
    ("ft dir missing", ["finetune", LIFTER, "-o", "missing_dir/model.pt"],
     "cannot write the -o file 'missing_dir/model.pt': the directory"),
    ("ft epochs -1", ["finetune", LIFTER, "--epochs", "-1", "-o", "m.pt"],
     "--epochs: '-1' is not allowed: an integer >= 1"),
    ("ft batch 0", ["finetune", LIFTER, "--batch-size", "0", "-o", "m.pt"],
     "--batch-size: '0' is not allowed"),
    ("ft lr nan", ["finetune", LIFTER, "--lr", "nan", "-o", "m.pt"],
     "--lr: 'nan' is not allowed: a finite number > 0"),
    ("ft lr negative", ["finetune", LIFTER, "--lr", "-1", "-o", "m.pt"], "--lr: '-1'"),
    ("ft lr decay", ["finetune", LIFTER, "--lr-decay", "1.5", "-o", "m.pt"],
     "--lr-decay 1.5: not allowed, must be a number in (0, 1]"),
    ("ft grad clip", ["finetune", LIFTER, "--grad-clip", "0", "-o", "m.pt"],
     "--grad-clip: '0' is not allowed"),
    ("ft max steps", ["finetune", LIFTER, "--max-steps", "0", "-o", "m.pt"],
     "--max-steps: '0' is not allowed"),
    ("ft max minutes", ["finetune", LIFTER, "--max-minutes", "inf", "-o", "m.pt"],
     "--max-minutes: 'inf' is not allowed"),
    ("ft checkpoint every", ["finetune", LIFTER, "--checkpoint-every", "-1", "-o", "m.pt"],
     "--checkpoint-every: '-1' is not allowed: an integer >= 0"),
    ("ft cameras", ["finetune", LIFTER, "--cameras", "0", "-o", "m.pt"], "--cameras: '0'"),
    ("ft frames", ["finetune", LIFTER, "--frames", "0", "-o", "m.pt"], "--frames: '0'"),
    ("ft noise", ["finetune", LIFTER, "--noise", "-1", "-o", "m.pt"],
     "--noise: '-1' is not allowed: a finite number >= 0"),
    ("ft subjects", ["finetune", LIFTER, "--val-subjects", "S9,,S11", "-o", "m.pt"],
     "--val-subjects: 'S9,,S11' has an empty subject name"),
    ("ft device", ["finetune", LIFTER, "--device", "gpu", "-o", "m.pt"],
     "--device gpu: not allowed"),
    ("ft amp", ["finetune", LIFTER, "--amp", "fp8", "-o", "m.pt"], "--amp: invalid choice"),
    ("ft resume", ["finetune", LIFTER, "--resume", "-o", "m.pt"],
     "--resume needs --checkpoint FILE"),
    ("ft log suffix", ["finetune", LIFTER, "--log", "run.txt", "-o", "m.pt"],
     "--log run.txt: not allowed, must be a file ending in .csv or .jsonl"),
    ("ft log is checkpoint", ["finetune", LIFTER, "--log", "run.csv", "--checkpoint", "run.csv",
                              "-o", "m.pt"],
     "--log run.csv: not allowed, must be a file other than the checkpoint"),
    ("ft checkpoint is -o", ["finetune", LIFTER, "--checkpoint", "m.pt", "-o", "m.pt"],
     "-o and --checkpoint are the same file (m.pt)"),
    ("ft checkpoint dir", ["finetune", LIFTER, "--checkpoint", "nowhere/run.ckpt", "-o", "m.pt"],
     "cannot write the --checkpoint file 'nowhere/run.ckpt'"),
    ("ft log dir", ["finetune", LIFTER, "--log", "nowhere/run.csv", "-o", "m.pt"],
     "cannot write the --log file 'nowhere/run.csv'"),
    ("ft over load", ["finetune", LIFTER, "--load", "plain.pt", "-o", "plain.pt"],
     "-o plain.pt is also the --load input"),
    ("ft load missing", ["finetune", LIFTER, "--load", "nothing.pt", "-o", "m.pt"],
     "--load nothing.pt does not exist"),
    ("ft state dict dir", ["finetune", LIFTER, "--state-dict", "folder", "-o", "m.pt"],
     "--state-dict folder is a directory, not a file"),
    ("ft plain load", ["finetune", LIFTER, "--variant", "plain", "--load", "plain.pt", "-o",
                       "m.pt"], "--variant plain trains the plain model"),
    ("ft data missing", ["finetune", LIFTER, "--data", "no/such/takes", "-o", "m.pt"],
     "no such file or folder"),
]
if not torch.cuda.is_available():
    CASES += [
        ("ft cuda", ["finetune", LIFTER, "--device", "cuda", "-o", "m.pt"],
         "--device cuda: not allowed, must be 'auto' or 'cpu' (no CUDA GPU here)"),
        ("ft fp16", ["finetune", LIFTER, "--amp", "fp16", "-o", "m.pt"],
         "--amp fp16: not allowed"),
    ]


@pytest.mark.parametrize("name,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_two_lines_and_exit_2(name: str, argv: list[str], words: str, work: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    before = _files(work)
    lines = _error(argv, capsys)
    assert words in lines[0], lines[0]
    assert _files(work) == before  # nothing written, changed, locked or left behind


def test_resume_of_a_finished_run_keeps_its_output(work: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["finetune", "tiny.py:Lifter", *FAST, "--checkpoint", "run.ckpt", "--log",
            "run.csv", "-o", "m.pt"]
    assert main(argv) == 0
    capsys.readouterr()
    before = _files(work)
    assert main([*argv, "--resume"]) == 0  # max_steps already reached: nothing to do
    assert "Nothing left to train" in capsys.readouterr().out
    assert _files(work) == before
    (work / "m.pt").unlink()  # killed after its last checkpoint, before saving -o
    assert main([*argv, "--resume"]) == 0
    assert "Saved to m.pt" in capsys.readouterr().out and (work / "m.pt").exists()


@pytest.mark.parametrize("locked", ["m.pt", "run.ckpt", "run.jsonl"])
def test_a_second_finetune_writing_the_same_files_is_refused(
        locked: str, work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (work / f"{locked}.lock").write_text(f"{owner.pid} {socket.gethostname()}\n")
        lines = _error(["finetune", LIFTER, *FAST, "--checkpoint", "run.ckpt", "--log",
                        "run.jsonl", "-o", "m.pt"], capsys)
        assert f"'{locked}' is being written by another process (pid {owner.pid}" in lines[0]
        assert "wait for that run to finish" in lines[1]
        assert sorted(p.name for p in work.glob("[mr]*")) == [f"{locked}.lock"]
    finally:
        owner.kill()
        owner.wait()


def test_python_dash_m_runs_the_command_line(work: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "symmetrize", "finetune", "--help"],
                        capture_output=True, text=True, timeout=120, env=env, check=False)
    assert ok.returncode == 0 and "usage: symmetrize finetune" in ok.stdout, ok.stderr
    start = time.monotonic()
    bad = subprocess.run([sys.executable, "-m", "symmetrize", "finetune", LIFTER, "-o",
                          "missing_dir/model.pt"], capture_output=True, text=True, timeout=120,
                         env=env, cwd=work, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines()[0].startswith("symmetrize: error: cannot write the -o file")
    assert time.monotonic() - start < 60  # at once: no data read, nothing trained
    assert not (work / "missing_dir").exists()
