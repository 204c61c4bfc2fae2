"""VideoPose3D's ``.npz`` pose archives for Human3.6M and HumanEva: read, check, write.

``data_3d_<dataset>.npz`` holds ``positions_3d``: ``{subject: {action: (T, J, 3) array}}``
(H36M: 32 raw joints in metres, of which VideoPose3D keeps 17; HumanEva: 15).
``data_2d_<dataset>_<detections>.npz`` holds ``positions_2d``: ``{subject: {action: [(T, J, 2)
array per camera]}}`` and ``metadata``: ``{"layout_name", "num_joints", "keypoints_symmetry":
[[left indices], [right indices]]}``.

The dicts are stored pickled. Pickles can run code when loaded, so load only archives you trust;
as a second line of defence these readers do not call ``np.load(allow_pickle=True)`` but unpickle
with an allow-list (dicts, lists, strings, numbers, NumPy arrays and dtypes) and refuse anything
else, then check every level of the structure.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from symmetrize.atomic import write_atomic
from symmetrize.data.pickles import ArchiveError, read_pickled
from symmetrize.skeleton import Skeleton

__all__ = [
    "H36M_KEPT_JOINTS",
    "ArchiveError",
    "check_symmetry",
    "load_positions_2d",
    "load_positions_3d",
    "save_positions_2d",
    "save_positions_3d",
]

#: The 17 of Human3.6M's 32 raw joints that VideoPose3D keeps (in order; the ``h36m`` preset).
H36M_KEPT_JOINTS: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
_SELECTIONS: dict[str, tuple[int, tuple[int, ...]]] = {"h36m17": (32, H36M_KEPT_JOINTS)}

Positions3D = dict[str, dict[str, np.ndarray]]
Positions2D = dict[str, dict[str, list[np.ndarray]]]
PathLike = str | os.PathLike[str]


def _read_archive(path: PathLike, keys: Sequence[str]) -> dict[str, Any]:
    """``{key: unpickled object}`` for ``keys`` of the ``.npz`` archive at ``path``."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if not p.is_file():
        raise ArchiveError(f"{p}: not a file")
    if not zipfile.is_zipfile(p):
        raise ArchiveError(f"{p}: not an .npz archive (not a zip file)")
    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(p) as archive:
            members = {n[: -len(".npy")]: n for n in archive.namelist() if n.endswith(".npy")}
            for key in keys:
                if key not in members:
                    found = ", ".join(repr(k) for k in sorted(members)) or "none"
                    raise ArchiveError(f"{p}: no {key!r} array in the archive (keys found: "
                                       f"{found})")
                with archive.open(members[key]) as stream:
                    out[key] = read_pickled(stream, str(p), key)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
            NotImplementedError) as exc:
        raise ArchiveError(f"{p}: a damaged .npz archive ({type(exc).__name__}: {exc})") \
            from None
    return out


# -- structure checks -----------------------------------------------------------------------------

def _mapping(value: Any, where: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ArchiveError(f"{where}: expected a dict of {what}, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ArchiveError(f"{where}: {what} must be named by strings, got {key!r}")
    return value


def _pose_array(value: Any, where: str, coords: int) -> np.ndarray:
    """A numeric ``(T, J, coords)`` array with finite values, as given."""
    if not isinstance(value, np.ndarray):
        raise ArchiveError(f"{where}: expected an array (frames, joints, {coords}), "
                           f"got {type(value).__name__}")
    if value.dtype.kind not in "iuf":
        raise ArchiveError(f"{where}: expected real numbers, got dtype {value.dtype}")
    if value.ndim != 3 or value.shape[-1] != coords or value.shape[1] == 0:
        raise ArchiveError(f"{where}: expected shape (frames, joints, {coords}), "
                           f"got {value.shape}")
    if value.size:
        bad_frames = np.flatnonzero(~np.isfinite(value).reshape(len(value), -1).all(axis=1))
        if bad_frames.size:
            count = int((~np.isfinite(value)).sum())
            raise ArchiveError(f"{where}: {count} NaN/inf value(s) in {bad_frames.size} "
                               f"frame(s), the first at frame {int(bad_frames[0])}")
    return value


class _JointCount:
    """The joint count all arrays must share, and where it was first seen."""

    def __init__(self) -> None:
        self.count: int | None = None
        self.first = ""

    def check(self, array: np.ndarray, where: str) -> None:
        joints = array.shape[1]
        if self.count is None:
            self.count, self.first = joints, where
        elif joints != self.count:
            raise ArchiveError(f"{where}: {joints} joints, but {self.first} has {self.count}")


def _per_action(data: Any, where: str,
                read: Callable[[Any, str, _JointCount], Any]) -> tuple[dict[str, Any], int | None]:
    """``{subject: {action: read(value, its location, joint counter)}}`` of a checked
    ``{subject: {action: value}}`` mapping, and the joint count every array shares."""
    joints = _JointCount()
    out: dict[str, Any] = {}
    for subject, actions in _mapping(data, where, "subjects").items():
        here = f"{where}: subject {subject!r}"
        out[subject] = {action: read(value, f"{here}, action {action!r}", joints)
                        for action, value in _mapping(actions, here, "actions").items()}
    return out, joints.count


def _positions_3d(data: Any, where: str) -> tuple[Positions3D, int | None]:
    """Checked ``{subject: {action: array}}`` (arrays as given) and the joint count."""
    def read(array: Any, loc: str, joints: _JointCount) -> np.ndarray:
        checked = _pose_array(array, loc, 3)
        joints.check(array, loc)
        return checked

    return _per_action(data, where, read)


def _positions_2d(data: Any, where: str) -> tuple[Positions2D, int | None]:
    """Checked ``{subject: {action: [array per camera]}}`` (arrays as given), joint count."""
    def read(cameras: Any, loc: str, joints: _JointCount) -> list[np.ndarray]:
        if not isinstance(cameras, (list, tuple)):
            raise ArchiveError(f"{loc}: expected a list of arrays (one per camera), "
                               f"got {type(cameras).__name__}")
        arrays = []
        for camera, array in enumerate(cameras):
            cam_loc = f"{loc}, camera {camera}"
            arrays.append(_pose_array(array, cam_loc, 2))
            joints.check(array, cam_loc)
        return arrays

    return _per_action(data, where, read)


def _check_plain(value: Any, where: str) -> None:
    """Metadata may hold only dicts, lists, strings, numbers and numeric arrays."""
    if isinstance(value, Mapping):
        for key, item in _mapping(value, where, "entries").items():
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ArchiveError(f"{where}: expected a numeric array, got dtype {value.dtype}")
    elif value is not None and not isinstance(value, (str, bool, int, float, np.generic)):
        raise ArchiveError(f"{where}: unexpected {type(value).__name__} value")


def _symmetry(metadata: Mapping[str, Any], where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``keypoints_symmetry`` as (left, right) index tuples."""
    if "keypoints_symmetry" not in metadata:
        raise ArchiveError(f"{where}: no 'keypoints_symmetry' in the metadata "
                           f"(keys: {sorted(metadata)})")
    sym = metadata["keypoints_symmetry"]
    try:
        left, right = (tuple(_index(i) for i in side) for side in sym)
    except (TypeError, ValueError):
        raise ArchiveError(f"{where}: keypoints_symmetry must be [[left indices], "
                           f"[right indices]], got {sym!r}") from None
    if len(left) != len(right):
        raise ArchiveError(f"{where}: keypoints_symmetry lists {len(left)} left but "
                           f"{len(right)} right joints")
    return left, right


def _index(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(value)
    return int(value)


def _metadata(metadata: Any, where: str, joints: int | None) -> dict[str, Any]:
    """Checked metadata: plain values; ``num_joints`` and ``keypoints_symmetry`` (when present)
    consistent with the arrays' joint count."""
    meta = _mapping(metadata, where, "metadata entries")
    _check_plain(meta, f"{where}: metadata")
    num = meta.get("num_joints")
    if num is not None:
        try:
            num = _index(num)
        except TypeError:
            raise ArchiveError(f"{where}: metadata num_joints must be an integer, "
                               f"got {num!r}") from None
        if joints is not None and num != joints:
            raise ArchiveError(f"{where}: metadata says num_joints={num} but the arrays have "
                               f"{joints} joints")
    count = joints if joints is not None else num
    if "keypoints_symmetry" in meta:
        left, right = _symmetry(meta, where)
        out_of_range = sorted(i for i in left + right if count is not None and not 0 <= i < count)
        if out_of_range:
            raise ArchiveError(f"{where}: keypoints_symmetry names joint(s) {out_of_range} "
                               f"outside 0..{count - 1}")
    return dict(meta)


def _select(positions: Positions3D, joints: str | Sequence[int] | None, count: int | None,
            where: str) -> Positions3D:
    """Each array in float64, keeping only the ``joints`` selected."""
    if joints is None or count is None:
        return {s: {a: np.asarray(x, np.float64) for a, x in acts.items()}
                for s, acts in positions.items()}
    if isinstance(joints, str):
        if joints not in _SELECTIONS:
            raise ValueError(f"unknown joint selection {joints!r}; known: {sorted(_SELECTIONS)} "
                             f"or a sequence of joint indices")
        raw, index = _SELECTIONS[joints]
        if count == len(index):  # already selected
            return _select(positions, None, count, where)
        if count != raw:
            raise ArchiveError(f"{where}: joints={joints!r} keeps {len(index)} of {raw} raw "
                               f"joints, but the arrays have {count} joints")
    else:
        index = tuple(_index(i) for i in joints)
        bad = [i for i in index if not 0 <= i < count]
        if bad:
            raise ValueError(f"joints {bad} are outside 0..{count - 1} ({where} has {count} "
                             f"joints)")
    idx = list(index)
    return {s: {a: np.asarray(x[:, idx], np.float64) for a, x in acts.items()}
            for s, acts in positions.items()}


# -- public API -----------------------------------------------------------------------------------

def load_positions_3d(path: PathLike,
                      joints: str | Sequence[int] | None = None) -> Positions3D:
    """``{subject: {action: (T, J, 3) float64 array}}`` from a VideoPose3D ``data_3d_*.npz``.

    ``joints``: ``"h36m17"`` keeps VideoPose3D's 17 of H36M's 32 raw joints
    (:data:`H36M_KEPT_JOINTS`; an archive already at 17 joints is kept as is), or a sequence of
    joint indices; ``None`` keeps all. Load only archives you trust (see the module docstring).
    """
    where = str(path)
    data = _read_archive(path, ["positions_3d"])["positions_3d"]
    positions, count = _positions_3d(data, where)
    return _select(positions, joints, count, where)


def load_positions_2d(path: PathLike, skeleton: Skeleton | str | None = None,
                      ) -> tuple[Positions2D, dict[str, Any]]:
    """``({subject: {action: [(T, J, 2) float64 array per camera]}}, metadata)`` from a
    VideoPose3D ``data_2d_*.npz``. With ``skeleton`` (a :class:`Skeleton` or preset name), also
    check the joint count and ``keypoints_symmetry`` against it (:func:`check_symmetry`).
    Load only archives you trust (see the module docstring)."""
    where = str(path)
    raw = _read_archive(path, ["positions_2d", "metadata"])
    positions, count = _positions_2d(raw["positions_2d"], where)
    metadata = _metadata(raw["metadata"], where, count)
    if skeleton is not None:
        sk = Skeleton.coerce(skeleton)
        if count is not None and count != len(sk):
            raise ArchiveError(f"{where}: the arrays have {count} joints but {_label(sk)} has "
                               f"{len(sk)}")
        check_symmetry(metadata, sk)
    out = {s: {a: [np.asarray(x, np.float64) for x in cams] for a, cams in acts.items()}
           for s, acts in positions.items()}
    return out, metadata


def check_symmetry(metadata: Mapping[str, Any], skeleton: Skeleton | str) -> None:
    """Raise ValueError unless ``metadata["keypoints_symmetry"]`` pairs the joints as
    ``skeleton`` does (the same mirror permutation; which side is called left does not matter),
    naming the joints that disagree."""
    sk = Skeleton.coerce(skeleton)
    label = _label(sk)
    left, right = _symmetry(metadata, "metadata")
    n = len(sk)
    num = metadata.get("num_joints")
    if num is not None and num != n:
        raise ValueError(f"metadata num_joints={num!r} but {label} has {n} joints")
    mirror = np.arange(n)
    seen: set[int] = set()
    for a, b in zip(left, right, strict=True):
        for i in (a, b):
            if not 0 <= i < n:
                raise ValueError(f"keypoints_symmetry names joint {i}, outside 0..{n - 1} of "
                                 f"{label}")
            if i in seen:
                raise ValueError(f"keypoints_symmetry names joint {i} more than once")
            seen.add(i)
        mirror[a], mirror[b] = b, a
    wrong = np.flatnonzero(mirror != sk.mirror)
    if wrong.size:
        details = "; ".join(_twin_text(int(i), int(mirror[i]), int(sk.mirror[i]), sk)
                            for i in wrong)
        raise ValueError(f"keypoints_symmetry disagrees with {label} at joint(s) "
                         f"{[int(i) for i in wrong]}: {details}")


def _label(sk: Skeleton) -> str:
    return f"skeleton {sk.name!r}" if sk.name else "the skeleton"


def _twin_text(i: int, archive: int, skeleton: int, sk: Skeleton) -> str:
    def twin(j: int) -> str:
        return "no twin" if j == i else f"{j} ({sk.names[j]!r})"

    return (f"joint {i} ({sk.names[i]!r}) has {twin(archive)} in the archive, "
            f"{twin(skeleton)} in the skeleton")


def _pickled(value: Any) -> np.ndarray:
    wrapped = np.empty((), dtype=object)
    wrapped[()] = value
    return wrapped


def save_positions_3d(path: PathLike, positions: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Write ``{subject: {action: (T, J, 3) array}}`` as a VideoPose3D ``data_3d_*.npz``
    (atomically; arrays keep their dtype)."""
    checked, _ = _positions_3d(positions, "positions_3d")
    write_atomic(path, lambda f: np.savez_compressed(f, positions_3d=_pickled(checked)))


def save_positions_2d(path: PathLike,
                      positions: Mapping[str, Mapping[str, Sequence[np.ndarray]]],
                      metadata: Mapping[str, Any]) -> None:
    """Write ``{subject: {action: [(T, J, 2) array per camera]}}`` and ``metadata`` (e.g.
    ``{"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [left, right]}``) as a
    VideoPose3D ``data_2d_*.npz`` (atomically; arrays keep their dtype)."""
    checked, count = _positions_2d(positions, "positions_2d")
    meta = _metadata(metadata, "metadata", count)
    write_atomic(path, lambda f: np.savez_compressed(
        f, positions_2d=_pickled(checked), metadata=_pickled(meta)))
