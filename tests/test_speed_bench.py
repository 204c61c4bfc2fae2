"""The speed benchmarks' quick forms run and report what they promise (not how fast)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def _benchmarks_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


def test_interleaved_timing_medians_and_errors() -> None:
    from timing import interleaved

    calls = {"a": 0, "b": 0}

    def make(name: str, work: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            calls[name] += 1
            sum(range(work))
        return run

    result = interleaved({"a": make("a", 20000), "b": make("b", 200000)}, "a", rounds=5,
                         repeats=2)
    assert calls == {"a": 1 + 5 * 2, "b": 1 + 5 * 2}  # warm-up, then rounds x repeats
    assert result["a"].ratio == 1.0 and len(result["b"].rounds) == 5
    assert result["b"].ratio > 1.0  # ten times the work
    with pytest.raises(ValueError, match="baseline 'c' is not one of the variants"):
        interleaved({"a": make("a", 1)}, "c")


@pytest.mark.skipif(sys.platform == "win32", reason="shapes only")
def test_bench_speed_quick_writes_its_table(tmp_path: Path) -> None:
    import bench_speed

    out = tmp_path / "speed.md"
    text = bench_speed.main(["--quick", "--rounds", "1", "--only", "MLP", "--out", str(out)])
    assert out.read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| MLP")]
    assert len(rows) == 2  # the default hidden policy and hidden="eigen", labelled
    assert 'hidden="eigen"' not in rows[0] and 'hidden="eigen"' in rows[1]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 9
        assert 0.4 < float(cells[1]) < 0.6  # about half the parameters
        assert all(float(c) > 0 for c in cells[2:])
