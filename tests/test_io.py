"""save_converted / load_converted: a converted model's weights and how it was converted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from symmetrize import Rep, Spec, symmetrize
from symmetrize.io import (
    FORMAT,
    VERSION,
    load_converted,
    read_converted,
    save_converted,
)
from symmetrize.passes.check import equivariance_error
from tests.pose_models import MLPLifter, TemporalModel

SPEC = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))


def _plain(seed: int, channels: int = 64) -> TemporalModel:
    torch.manual_seed(seed)
    return TemporalModel(17, 2, 17, filter_widths=(3, 3), channels=channels, dropout=0.0)


def _x() -> torch.Tensor:
    return torch.randn(2, 9, 17, 2, generator=torch.Generator().manual_seed(5))


def _trained(**options: object) -> nn.Module:
    """A converted model trained one Adam step, so its weights differ from a fresh conversion."""
    converted = symmetrize(_plain(0), SPEC, (_x(),), **options)
    optimiser = torch.optim.Adam(converted.parameters(), lr=1e-2)
    converted.train()
    loss = converted(_x()).pow(2).mean()
    loss.backward()
    optimiser.step()
    return converted


def _same_outputs(a: nn.Module, b: nn.Module) -> bool:
    a.eval()
    b.eval()
    with torch.no_grad():
        return torch.equal(a(_x()), b(_x()))


def test_round_trip_restores_the_trained_model(tmp_path: Path) -> None:
    converted = _trained()
    path = tmp_path / "converted.pt"
    save_converted(converted, path, factory="tests.pose_models:TemporalModel")
    fresh = symmetrize(_plain(1), SPEC, (_x(),))
    assert not _same_outputs(converted, fresh)            # training (and the seed) changed it
    reloaded = load_converted(path, _plain(1))
    assert type(reloaded) is type(converted)
    assert _same_outputs(converted, reloaded)
    saved, back = converted.state_dict(), reloaded.state_dict()
    assert saved.keys() == back.keys()
    assert all(torch.equal(saved[k], back[k]) for k in saved)
    assert equivariance_error(reloaded, SPEC, (_x(),)) < 1e-10
    assert reloaded.symmetrize_report.spec == SPEC


def test_file_is_plain_data_for_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "converted.pt"
    save_converted(_trained(), path, factory="pkg.models:make")
    data = torch.load(path, weights_only=True)
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert data["model"] == "TemporalModel" and data["factory"] == "pkg.models:make"
    assert Spec.from_dict(data["spec"]) == SPEC
    assert data["inputs"] == [{"shape": [2, 9, 17, 2], "dtype": "float32"}]
    assert data["options"]["hidden"] == "auto" and data["options"]["weights"] == "project"
    assert all(t.device.type == "cpu" for t in data["state_dict"].values())
    assert read_converted(path)["spec"] == SPEC


def test_hidden_dict_with_reps_and_fractions_round_trips(tmp_path: Path) -> None:
    hidden = {"layers_conv.0": Rep.regular(64), "layers_conv.1": 1 / 6, "expand_conv": "regular"}
    converted = _trained(hidden=hidden, activation="mixed")
    path = tmp_path / "converted.pt"
    save_converted(converted, path)
    stored = torch.load(path, weights_only=True)["options"]["hidden"]
    assert stored["layers_conv.0"] == {"perm": list(Rep.regular(64).perm), "sign": [1] * 64}
    assert read_converted(path)["options"]["hidden"] == hidden
    reloaded = load_converted(path, _plain(3))
    assert _same_outputs(converted, reloaded)
    assert equivariance_error(reloaded, SPEC, (_x(),)) < 1e-10


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    converted = _trained()
    path = tmp_path / "converted.pt"
    path.write_bytes(b"the previous file")

    def broken_save(*args: object, **kwargs: object) -> None:
        handle = args[1]
        handle.write(b"partial")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_converted(converted, path)
    with pytest.raises(RuntimeError, match="disk full"):
        save_converted(converted, tmp_path / "new.pt")
    assert path.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted.pt"]


def test_overwrite_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "converted.pt"
    path.write_bytes(b"old")
    path.chmod(0o640)
    save_converted(_trained(), path)
    assert path.stat().st_mode & 0o777 == 0o640
    assert read_converted(path)["format"] == FORMAT


def test_wrong_architecture_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "converted.pt"
    save_converted(_trained(), path, factory="tests.pose_models:TemporalModel")
    with pytest.raises(ValueError, match=r"does not fit the given TemporalModel.*shapes differ.*"
                                         r"expand_conv.*tests.pose_models:TemporalModel"):
        load_converted(path, _plain(0, channels=85))
    deeper = TemporalModel(17, 2, 17, filter_widths=(3, 1, 1), channels=64, dropout=0.0)
    with pytest.raises(ValueError, match="unexpected keys|missing keys"):
        load_converted(path, deeper)
    with pytest.raises(ValueError, match="converting the given MLPLifter .* failed"):
        load_converted(path, MLPLifter())


def test_callable_hidden_cannot_be_saved(tmp_path: Path) -> None:
    converted = symmetrize(_plain(0), SPEC, (_x(),), hidden=lambda path, width: Rep.regular(width))
    path = tmp_path / "converted.pt"
    with pytest.raises(ValueError, match=r"hidden= is a callable.*Fix: pass hidden as"):
        save_converted(converted, path)
    converted = symmetrize(_plain(0), SPEC, (_x(),),
                           hidden={"expand_conv": lambda path, width: Rep.regular(width)})
    with pytest.raises(ValueError, match=r"hidden\['expand_conv'\] is a callable"):
        save_converted(converted, path)
    assert list(tmp_path.iterdir()) == []


def test_not_a_converted_model() -> None:
    with pytest.raises(TypeError, match="not a converted model"):
        save_converted(_plain(0), "unused.pt")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_converted(tmp_path / "missing.pt", _plain(0))
    state = tmp_path / "state.pt"
    torch.save(_plain(0).state_dict(), state)
    with pytest.raises(ValueError, match="not a converted-model file .*load_state_dict"):
        load_converted(state, _plain(0))
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a converted-model file that torch.load can read"):
        read_converted(text)
    newer = tmp_path / "newer.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1}, newer)
    with pytest.raises(ValueError, match="upgrade symmetrize"):
        read_converted(newer)
    damaged = tmp_path / "damaged.pt"
    torch.save({"format": FORMAT, "version": VERSION, "spec": {}}, damaged)
    with pytest.raises(ValueError, match="damaged"):
        read_converted(damaged)
