"""Spec and Skeleton as data: to_dict/from_dict round trips, JSON/TOML spec files, presets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from symmetrize import Skeleton, Spec
from symmetrize.spec_files import SPEC_KEYS

CUSTOM = Skeleton(["root", "l_arm", "r_arm", "head", "left_leg", "right_leg"],
                  pairs=[(1, 2), (4, 5)], parents=[-1, 0, 0, 0, 0, 0], name="mine")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- skeletons
@pytest.mark.parametrize("name", Skeleton.presets())
def test_skeleton_preset_round_trip(name: str) -> None:
    skeleton = Skeleton.preset(name)
    data = skeleton.to_dict()
    assert data == {"preset": name}
    back = Skeleton.from_dict(json.loads(json.dumps(data)))
    assert back == skeleton and back.parents == skeleton.parents and back.name == name


def test_custom_skeleton_round_trip_keeps_everything() -> None:
    data = json.loads(json.dumps(CUSTOM.to_dict()))
    assert set(data) == {"name", "names", "pairs", "parents", "edges"}
    back = Skeleton.from_dict(data)
    assert back == CUSTOM
    assert (back.name, back.pairs, back.parents, back.edges) == (
        "mine", CUSTOM.pairs, CUSTOM.parents, CUSTOM.edges)


def test_edited_preset_is_written_in_full() -> None:
    h36m = Skeleton.preset("h36m")
    renamed = Skeleton(h36m.names, parents=h36m.parents, name="my-h36m")
    assert renamed.to_dict()["names"] == list(h36m.names)
    no_bones = Skeleton(h36m.names, name="h36m")          # same joints, no parents: not the preset
    assert "preset" not in no_bones.to_dict()
    assert Skeleton.from_dict(no_bones.to_dict()).parents is None


def test_skeleton_from_dict_accepts_a_preset_name_and_inferred_pairs() -> None:
    assert Skeleton.from_dict("coco") == Skeleton.preset("coco")
    inferred = Skeleton.from_dict({"names": ["hip", "left_knee", "right_knee"]})
    assert inferred.pairs == ((1, 2),)


@pytest.mark.parametrize("data,key", [
    ({"names": ["a", "a"]}, "'names'"),
    ({"names": "abc"}, "'names'"),
    ({"names": ["a", "b"], "pairs": [[0, 5]]}, "'pairs'"),
    ({"names": ["a", "b"], "pairs": [[0]]}, "'pairs'"),
    ({"names": ["a", "b"], "parents": [0]}, "'parents'"),
    ({"names": ["a", "b"], "edges": [[0, 0]]}, "'edges'"),
    ({"names": ["a"], "name": 3}, "'name'"),
    ({"names": ["a"], "joints": 3}, "'joints'"),
    ({"pairs": [[0, 1]]}, "'names'"),
    ({"preset": "h37m"}, "'preset'"),
    ({"preset": "h36m", "names": ["a"]}, "'preset'"),
])
def test_skeleton_from_dict_errors_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        Skeleton.from_dict(data)


# ----------------------------------------------------------------------------- specs
SPECS = [
    Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,)),
    Spec(input="n t (j c)", output=("n t j c", "n k"), skeleton="coco", output_skeleton="h36m",
         output_negate=(0, 2)),
    Spec(input=("n c t j m", None), output=None, skeleton=CUSTOM, negate=()),
    Spec(input="... j c", output="... j c", skeleton="smpl", output_skeleton=CUSTOM),
]


@pytest.mark.parametrize("spec", SPECS, ids=range(len(SPECS)))
def test_spec_round_trip(spec: Spec) -> None:
    data = spec.to_dict()
    assert set(data) == set(SPEC_KEYS)
    back = Spec.from_dict(json.loads(json.dumps(data)))
    assert back == spec and hash(back) == hash(spec)
    assert back.to_dict() == data
    assert back.skeleton.pairs == spec.skeleton.pairs
    assert back.output_skeleton == spec.output_skeleton
    assert back.negate == spec.negate and back.output_negate == spec.output_negate


def test_spec_equality() -> None:
    a = Spec(input="n  t j c", output="n t j c", skeleton="h36m")
    b = Spec(input=["n t j c"], output=["n t j c"], skeleton=Skeleton.preset("h36m"),
             output_skeleton="h36m", output_negate=(0,))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(1,))
    assert a != Spec(input="n t j c", output="n t j c", skeleton="coco")
    assert a != "h36m"


def test_from_dict_accepts_single_strings_and_none() -> None:
    spec = Spec.from_dict({"input": "n c t j m", "output": "none", "skeleton": "ntu"})
    assert spec == Spec(input="n c t j m", output=None, skeleton="ntu", negate=(0,))
    assert Spec.from_dict({"input": "n j c", "output": None, "skeleton": "h36m"}).outputs == (None,)


@pytest.mark.parametrize("data,key", [
    ({"input": "n j c", "output": "n j c", "skeleton": "h36m", "negative": [0]}, "'negative'"),
    ({"input": "n j c", "output": "n j c"}, "'skeleton'"),
    ({"output": "n j c", "skeleton": "h36m"}, "'input'"),
    ({"input": "n (j c", "output": "n j c", "skeleton": "h36m"}, "'input'"),
    ({"input": ["n j c", 3], "output": "n j c", "skeleton": "h36m"}, r"'input\[1\]'"),
    ({"input": "n j c", "output": "n (t j c)", "skeleton": "h36m"}, "'output'"),
    ({"input": "n j c", "output": "n j c", "skeleton": "h37m"}, "'skeleton'"),
    ({"input": "n j c", "output": "n j c", "skeleton": "h36m", "negate": "x"}, "'negate'"),
    ({"input": "n j c", "output": "n j c", "skeleton": "h36m", "output_skeleton": {}},
     "'output_skeleton'"),
    ({"input": "n j c", "output": "n j c", "skeleton": "h36m", "output_negate": [0, 0]},
     "'output_negate'"),
])
def test_spec_from_dict_errors_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        Spec.from_dict(data)


def test_unknown_key_lists_the_allowed_keys() -> None:
    with pytest.raises(ValueError, match="unknown spec key 'x'; allowed keys: ") as err:
        Spec.from_dict({"input": "n j c", "output": "n j c", "skeleton": "h36m", "x": 1})
    assert all(repr(key) in str(err.value) for key in SPEC_KEYS)


# ----------------------------------------------------------------------------- files
def test_load_json(tmp_path: Path) -> None:
    for i, spec in enumerate(SPECS):
        path = _write(tmp_path, f"spec{i}.json", json.dumps(spec.to_dict(), indent=2))
        assert Spec.load(path) == spec
        assert Spec.load(str(path)) == spec


def test_load_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "lifter.toml", """
# a VideoPose3D lifter
input = "n t j c"
output = "n t j c"
skeleton = "h36m"
negate = [0]
""")
    assert Spec.load(path) == Spec.preset("h36m")
    custom = _write(tmp_path, "custom.TOML", """
input = ["n t (j c)", "none"]
output = "n k"
negate = []

[skeleton]
name = "mine"
names = ["root", "l_arm", "r_arm", "head", "left_leg", "right_leg"]
pairs = [[1, 2], [4, 5]]
parents = [-1, 0, 0, 0, 0, 0]
""")
    spec = Spec.load(custom)
    assert spec == Spec(input=("n t (j c)", None), output="n k", skeleton=CUSTOM, negate=())
    assert spec.skeleton.parents == CUSTOM.parents and spec.skeleton.name == "mine"


@pytest.mark.parametrize("name,text,problem", [
    ("unknown.toml", 'input = "n j c"\noutput = "n j c"\nskeleton = "h36m"\nnegat = [0]\n',
     "unknown spec key 'negat'"),
    ("layout.json", '{"input": "n j (c", "output": "n j c", "skeleton": "h36m"}',
     "spec key 'input': invalid layout"),
    ("noskeleton.toml", 'input = "n j c"\noutput = "n j c"\n', "spec key 'skeleton' is missing"),
    ("broken.toml", 'input = "n j c\noutput = \n', "not valid TOML"),
    ("broken.json", '{"input": "n j c",', "not valid JSON"),
    ("list.json", '["n j c"]', "a spec must be a table"),
    ("skeleton.toml", 'input = "n j c"\noutput = "n j c"\n[skeleton]\nnames = ["left_a"]\n',
     "skeleton key 'names'"),
    ("spec.yaml", "input: n j c", "unsupported extension"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, name: str, text: str,
                                                 problem: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(ValueError, match=re.escape(problem)) as err:
        Spec.load(path)
    message = str(err.value)
    assert message.startswith(f"spec file {str(path)!r}: "), message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.toml"):
        Spec.load(tmp_path / "nothere.toml")


def test_spec_files_are_data_only(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _write(tmp_path, "evil.json",
                  json.dumps({"input": f"__import__('pathlib').Path('{marker}').touch()",
                              "output": "n j c", "skeleton": "h36m"}))
    with pytest.raises(ValueError, match=r"evil\.json'?: spec key 'input': invalid layout"):
        Spec.load(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- presets
def test_preset_names() -> None:
    names = Spec.presets()
    for skeleton in Skeleton.presets():
        assert skeleton in names and f"{skeleton}-action" in names
    assert len(names) == 2 * len(Skeleton.presets())


@pytest.mark.parametrize("name", Skeleton.presets())
def test_presets_are_what_the_docstring_says(name: str) -> None:
    assert Spec.preset(name) == Spec(input="n t j c", output="n t j c", skeleton=name,
                                     negate=(0,))
    action = Spec.preset(f"{name}-action")
    assert action == Spec(input="n c t j m", output=None, skeleton=name, negate=(0,))
    assert action.is_invariant_output(0)
    assert Spec.preset(name.upper()) == Spec.preset(name)
    for preset in (Spec.preset(name), action):
        assert Spec.from_dict(preset.to_dict()) == preset


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ValueError, match="unknown spec preset 'h37m'.*h36m-action"):
        Spec.preset("h37m")
