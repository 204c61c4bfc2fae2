"""Motion-capture takes as users have them: one BVH file, one AMC file with its subject's ASF, or a
folder mixing both, read in metres and mapped to a target skeleton preset by joint maps.

A folder holds ``.bvh`` takes of any supported naming and ``.amc`` takes with one ``.asf`` per
subject; a take's subject is its file name before the first ``_`` (``01_02.amc`` -> ``01``,
whose skeleton is ``01.asf``). Other files are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from symmetrize.data.amc import load_asf_amc
from symmetrize.data.bvh import load_bvh
from symmetrize.data.errors import DataError, JointMapError
from symmetrize.data.joint_maps import JointMapSpec, choose_map, resolve_maps
from symmetrize.data.motion import Motion, drop_empty_lead

__all__ = ["Take", "find_takes", "load_take", "load_takes"]

TAKE_SUFFIXES = (".bvh", ".amc")


@dataclass(frozen=True)
class Take:
    """One take of a folder: its ``subject``, its file and (AMC) its subject's ASF file."""

    subject: str
    path: Path
    asf: Path | None = None


def _subject(path: Path) -> str:
    return path.stem.split("_", 1)[0]


def find_takes(folder: str | PathLike[str]) -> list[Take]:
    """The takes of ``folder`` sorted by file name (``.bvh`` and ``.amc``, any case).

    Raises:
        FileNotFoundError: no such folder.
        DataError: not a folder, no takes in it, or an AMC take without its subject's ASF.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files = sorted(p for p in root.iterdir() if p.is_file())
    skeletons = {p.stem: p for p in files if p.suffix.lower() == ".asf"}
    takes = []
    for path in files:
        kind = path.suffix.lower()
        if kind not in TAKE_SUFFIXES:
            continue
        subject = _subject(path)
        asf = None
        if kind == ".amc":
            asf = skeletons.get(subject)
            if asf is None:
                raise DataError(f"{path}: no ASF skeleton {subject}.asf beside this AMC take "
                                f"(a folder holds one .asf per subject, named after the subject: "
                                f"the file name of its takes before '_')")
        takes.append(Take(subject, path, asf))
    if not takes:
        raise DataError(f"{root}: the folder holds no .bvh or .amc takes")
    return takes


def load_take(path: str | PathLike[str], *, asf: str | PathLike[str] | None = None,
              target: str = "h36m",
              joint_map: JointMapSpec | Sequence[JointMapSpec] | None = None,
              amc_fps: float = 120.0) -> tuple[Motion, str]:
    """One take in metres on the ``target`` preset's joints, and the name of the joint map used.

    A ``.bvh`` file is read in file units, its joint map chosen from its joint names
    (``joint_map`` first, then the built-in maps), then scaled by the map's
    ``metres_per_unit`` and cut by its ``skip_frames``. An ``.amc`` file needs its ``asf``
    (metres from ``:units length``; ``amc_fps`` frames per second, AMC files record none).
    Leading frames with the root exactly at rest (empty capture frames) are dropped.

    Raises:
        FileNotFoundError, DataError: a missing or malformed file (BVHError, ASFError,
            AMCError), a take left without frames, a file no joint map fits (JointMapError).
    """
    file = Path(path)
    maps = resolve_maps(joint_map)
    if file.suffix.lower() == ".amc":
        if asf is None:
            raise DataError(f"{file}: an AMC take needs its ASF skeleton (asf=...)")
        motion = load_asf_amc(asf, file, fps=amc_fps)
        chosen = choose_map(motion.names, str(file), target=target, joint_map=maps)
    else:
        raw = load_bvh(file)
        chosen = choose_map(raw.names, str(file), target=target, joint_map=maps)
        if chosen.metres_per_unit is None:
            raise JointMapError(chosen.source, None, f"joint map {chosen.name!r} fits {file} but "
                                f"gives no [bvh] metres_per_unit; add it (0.01 for centimetres, "
                                f"0.001 for millimetres)")
        if chosen.skip_frames > len(raw):
            raise DataError(f"{file}: {len(raw)} frames, fewer than the {chosen.skip_frames} "
                            f"leading frames joint map {chosen.name!r} skips")
        motion = raw.scaled(chosen.metres_per_unit).select(slice(chosen.skip_frames, None))
    motion = drop_empty_lead(motion)
    if len(motion) == 0:
        raise DataError(f"{file}: no motion frames (after the leading frames that are no motion)")
    return chosen.apply(motion), chosen.name


def load_takes(folder: str | PathLike[str], *, target: str = "h36m",
               joint_map: JointMapSpec | Sequence[JointMapSpec] | None = None
               ) -> list[tuple[Take, Motion, str]]:
    """Every take of ``folder`` (:func:`find_takes`) loaded by :func:`load_take`: ``(take,
    motion, joint map name)`` in file-name order."""
    maps = resolve_maps(joint_map)
    out = []
    for take in find_takes(folder):
        motion, name = load_take(take.path, asf=take.asf, target=target, joint_map=maps)
        out.append((take, motion, name))
    return out
