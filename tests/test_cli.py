"""The command line: explain, check, convert, skeletons; errors as two lines and exit code 2."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from symmetrize.cli import _build_parser, main
from symmetrize.io import load_converted
from symmetrize.passes.check import equivariance_error

ROOT = Path(__file__).resolve().parents[1]

HELPERS = "WIDTH = 34\n"
MODELS = '''
from torch import nn

from cli_helpers import WIDTH  # a sibling module: the file's directory is on sys.path


class Tiny(nn.Module):
    """A small temporal lifter on (N, T, J, 2) -> (N, T, J, 3)."""

    def __init__(self, joints: int = 17, width: int = WIDTH) -> None:
        super().__init__()
        self.expand = nn.Conv1d(joints * 2, width, 3, padding=1)
        self.relu = nn.ReLU()
        self.mix = nn.Linear(width, width)
        self.head = nn.Conv1d(width, joints * 3, 1)

    def forward(self, x):
        n, t = x.shape[:2]
        x = x.reshape(n, t, -1).permute(0, 2, 1)
        x = self.relu(self.expand(x))
        x = self.relu(self.mix(x.transpose(1, 2))).transpose(1, 2)
        return self.head(x).permute(0, 2, 1).reshape(n, t, -1, 3)


def make():
    return Tiny()


def make_wide():
    return Tiny(width=68)


class Cropped(nn.Module):
    """Keeps three joints only: a left joint without its right twin does not convert."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3 * 2, 17 * 3)

    def forward(self, x):
        n, t = x.shape[:2]
        return self.head(x[:, :, :3].reshape(n, t, -1)).reshape(n, t, 17, 3)


def not_a_model():
    return 42


def broken():
    raise RuntimeError("cannot build")
'''
EXAMPLE = ["--spec", "h36m", "--example", "2,9,17,2"]


@pytest.fixture
def models(tmp_path: Path) -> Iterator[str]:
    """The path of a model-factory file (and its sibling helper) written for the test."""
    (tmp_path / "cli_helpers.py").write_text(HELPERS)
    path = tmp_path / "cli_models.py"
    path.write_text(MODELS)
    yield str(path)
    for name in ("cli_models", "cli_helpers"):
        sys.modules.pop(name, None)


def _make(models: str, name: str = "make") -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("cli_models_direct", models)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(models).parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(Path(models).parent))
    return getattr(module, name)()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_error(code: int, err: str) -> None:
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("symmetrize: error: ") and len(lines[0]) > 20, err
    assert lines[1].startswith("  hint: ") and len(lines[1]) > 9, err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- explain
def test_explain_prints_the_report(models: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "explain", f"{models}:make", *EXAMPLE)
    assert code == 0
    for module in ("expand", "mix", "head"):
        assert module in out


def test_explain_json_and_markdown(models: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "explain", f"{models}:make", *EXAMPLE, "--json")
    assert code == 0
    report = json.loads(out)
    assert "expand" in json.dumps(report)
    code, out, _ = _run(capsys, "explain", f"{models}:make", *EXAMPLE, "--markdown")
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) >= 3 and any(set(line) <= set("|-: ") for line in table), out
    with pytest.raises(SystemExit, match="^2$"):  # --json and --markdown exclude each other
        main(["explain", f"{models}:make", *EXAMPLE, "--json", "--markdown"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_explain_writes_graphs(models: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    for suffix in ("dot", "svg"):
        path = tmp_path / f"graph.{suffix}"
        code, _, err = _run(capsys, "explain", f"{models}:make", *EXAMPLE, "--graph", str(path))
        assert code == 0 and str(path) in err
        assert path.stat().st_size > 100
    assert "digraph" in (tmp_path / "graph.dot").read_text()
    assert "<svg" in (tmp_path / "graph.svg").read_text()


def test_explain_passes_conversion_options(models: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "explain", f"{models}:make", *EXAMPLE, "--hidden", "regular",
                        "--json")
    assert code == 0
    assert json.loads(out)  # a regular hidden layout keeps the ReLUs: nothing switched
    code, out, _ = _run(capsys, "explain", f"{models}:make", *EXAMPLE, "--keep", "head")
    assert code == 0 and "head" in out


# ----------------------------------------------------------------------------- check / convert
def test_check_plain_model_fails_with_exit_1(models: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", f"{models}:make", "--spec", "h36m",
                        "--example", "2x9x17x2")
    assert code == 1 and "FAILED" in out
    code, out, _ = _run(capsys, "check", f"{models}:make", *EXAMPLE, "--json")
    assert code == 1 and json.loads(out)["passed"] is False


def test_convert_then_check_and_reload(models: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "converted.pt"
    code, out, _ = _run(capsys, "convert", f"{models}:make", *EXAMPLE, "-o", str(out_file),
                        "--activation", "mixed", "--negated-fraction", "0.25")
    assert code == 0
    assert "parameters" in out and "replaced" in out and "equivariance error" in out
    assert str(out_file) in out
    saved = torch.load(out_file, weights_only=True)
    assert saved["factory"] == f"{models}:make"
    assert saved["options"]["activation"] == "mixed"
    assert saved["options"]["negated_fraction"] == 0.25

    code, out, _ = _run(capsys, "check", f"{models}:make", "--load", str(out_file))
    assert code == 0 and "passed" in out
    code, out, _ = _run(capsys, "check", f"{models}:make", "--load", str(out_file), "--json",
                        *EXAMPLE)
    assert code == 0 and json.loads(out)["passed"] is True

    reloaded = load_converted(out_file, _make(models))
    state = reloaded.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved["state_dict"].items())
    x = torch.randn(2, 9, 17, 2)
    assert equivariance_error(reloaded, reloaded.symmetrize_report.spec, (x,)) < 1e-10


def test_convert_with_pretrained_weights_and_a_spec_file(
        models: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "plain.pt"
    torch.save(_make(models).state_dict(), weights)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text('input = "n t j c"\noutput = "n t j c"\nskeleton = "h36m"\n'
                         'negate = [0]\n')
    out_file = tmp_path / "converted.pt"
    code, _, _ = _run(capsys, "convert", f"{models}:make", "--spec", str(spec_file),
                      "--example", "2,9,17,2", "--state-dict", str(weights), "-o", str(out_file))
    assert code == 0 and out_file.exists()
    wrong = tmp_path / "wide.pt"
    torch.save(_make(models, "make_wide").state_dict(), wrong)
    code, _, err = _run(capsys, "check", f"{models}:make", *EXAMPLE, "--state-dict", str(wrong))
    _assert_error(code, err)
    assert "do not fit" in err


def test_dotted_module_from_the_working_directory(
        models: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(Path(models).parent)
    code, out, _ = _run(capsys, "check", "cli_models:Tiny", *EXAMPLE, "--dtype", "float64")
    assert code == 1 and "float64" in out


def test_spec_overrides(models: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "converted.pt"
    code, _, _ = _run(capsys, "convert", f"{models}:make", "--spec", "h36m", "--input",
                      "n t j c", "--output", "n t j c", "--negate", "0", "--example", "2,9,17,2",
                      "-o", str(out_file))
    assert code == 0
    spec = torch.load(out_file, weights_only=True)["spec"]
    assert spec["input"] == ["n t j c"] and spec["negate"] == [0]


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("argv,words", [
    (["check", "{models}", *EXAMPLE], "MODULE:FACTORY"),
    (["check", "{dir}/missing.py:make", *EXAMPLE], "no such file"),
    (["check", "no_such_package.models:make", *EXAMPLE], "cannot import module"),
    (["check", "{models}:nope", *EXAMPLE], "has no 'nope'"),
    (["check", "{models}:not_a_model", *EXAMPLE], "not a torch.nn.Module"),
    (["check", "{models}:broken", *EXAMPLE], "cannot build"),
    (["check", "{models}:make", "--spec", "h37m", "--example", "2,9,17,2"], "h37m"),
    (["check", "{models}:make", "--spec", "{dir}/nothere.toml", "--example", "2,9,17,2"],
     "does not exist"),
    (["check", "{models}:make", "--spec", "h36m", "--example", "2,9,a,2"], "bad --example"),
    (["check", "{models}:make", "--spec", "h36m", "--example", "2,9,17,2", "--example", "3"],
     "2 --example shapes"),
    (["check", "{models}:make", "--spec", "h36m", "--input", "n t (j", "--example", "2,9,17,2"],
     "invalid layout"),
    (["convert", "{models}:Cropped", *EXAMPLE, "-o", "{dir}/x.pt"], "not equivariant"),
    (["convert", "{models}:make", *EXAMPLE, "--keep", "nothere", "-o", "{dir}/x.pt"], "nothere"),
    (["check", "{models}:make", "--load", "{dir}/missing.pt"], "does not exist"),
    (["check", "{models}:make", "--state-dict", "{dir}/missing.pt", *EXAMPLE], "no such file"),
    (["explain", "{models}:make", *EXAMPLE, "--hidden", "bad"], "invalid choice"),
])
def test_errors_are_two_lines_and_exit_2(models: str, argv: list[str], words: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(Path(models).parent)
    argv = [a.format(models=models, dir=directory) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    _assert_error(code, err)
    assert words in err.splitlines()[0], err
    assert not list(Path(directory).glob("*.pt"))


def test_fix_part_becomes_the_hint(models: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "check", f"{models}:make", "--spec", "h36m",
                        "--input", "n t (j", "--example", "2,9,17,2")
    _assert_error(code, err)
    assert err.splitlines()[1] == "  hint: add the matching ')'"
    code, _, err = _run(capsys, "convert", f"{models}:Cropped", *EXAMPLE, "-o", "unused.pt")
    _assert_error(code, err)
    assert "Fix" not in err
    assert err.splitlines()[1] == "  hint: keep both joints of every mirror pair"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_exception(models: str, where: str) -> None:
    argv = ["check", f"{models}:broken", *EXAMPLE]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(Exception, match="cannot build"):
        main(argv)


def test_console_entry_point_prints_no_traceback(models: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "symmetrize.cli", "convert",
                             f"{models}:Cropped", *EXAMPLE, "-o", str(tmp_path / "x.pt")],
                            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
                            check=False)
    assert result.returncode == 2, result.stderr
    _assert_error(result.returncode, result.stderr)
    assert result.stdout == ""


# ----------------------------------------------------------------------------- help, skeletons
def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["explain", "check", "convert", "finetune", "skeletons",
                                     "demo"])
def test_help_mentions_every_option_and_examples(command: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="^0$"):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "example" in text and f"symmetrize {command}" in text
    for action in _commands()[command]._actions:
        for option in action.option_strings:
            assert option in text, option


def test_skeletons_lists_the_spec_presets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "skeletons")
    assert code == 0
    assert "h36m-action" in out and "ntu-action" in out and "n c t j m" in out
