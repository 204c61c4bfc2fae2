"""Layout parsing, per-axis mirror Reps and concrete mirrors of a model Spec."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symmetrize import Rep, Skeleton
from symmetrize.spec import Layout, Spec, parse_layout


def hand_perm(skeleton: Skeleton | str) -> list[int]:
    """Joint permutation of the mirror, written from the skeleton's left/right lists."""
    sk = Skeleton.coerce(skeleton)
    perm = list(range(len(sk)))
    for left, right in zip(sk.left, sk.right):
        perm[left], perm[right] = right, left
    return perm


def hand_mirror(x: torch.Tensor, skeleton: Skeleton | str, j_dim: int | None, c_dim: int | None,
                negate: tuple[int, ...]) -> torch.Tensor:
    """Reference mirror: swap twins along ``j_dim``, flip the ``negate`` coordinates of ``c_dim``."""
    if j_dim is not None:
        x = x.index_select(j_dim, torch.tensor(hand_perm(skeleton)))
    if c_dim is not None:
        sign = torch.ones(x.shape[c_dim], dtype=x.dtype)
        sign[list(negate)] = -1
        shape = [1] * x.dim()
        shape[c_dim] = -1
        x = x * sign.view(shape)
    return x


# ----------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(("text", "axes", "ellipsis"), [
    ("n t j c", (("n",), ("t",), ("j",), ("c",)), None),
    ("n t (j c)", (("n",), ("t",), ("j", "c")), None),
    ("n (j c) t", (("n",), ("j", "c"), ("t",)), None),
    ("(n t) (j c)", (("n", "t"), ("j", "c")), None),
    ("  n\tt(j  c) ", (("n",), ("t",), ("j", "c")), None),
    ("... j c", (("j",), ("c",)), 0),
    ("n ... c", (("n",), ("c",)), 1),
    ("n t j c ...", (("n",), ("t",), ("j",), ("c",)), 4),
    ("n k", (("n",), ("k",)), None),
    ("batch time_2 _x", (("batch",), ("time_2",), ("_x",)), None),
    ("", (), None),
])
def test_parse_layout(text: str, axes: tuple[tuple[str, ...], ...], ellipsis: int | None) -> None:
    layout = parse_layout(text)
    assert layout == Layout(axes, ellipsis)
    assert layout.text == text
    assert parse_layout(str(layout)) == layout


def test_layout_queries() -> None:
    grouped = parse_layout("n t (j c)")
    assert grouped.min_rank == 3 and grouped.has_joints and grouped.has_coords
    assert not grouped.is_invariant and grouped.names == ("n", "t", "j", "c")
    assert parse_layout("n k").is_invariant
    assert parse_layout("n c").has_coords and not parse_layout("n c").has_joints
    middle = parse_layout("n ... j c")
    assert middle.dims(3) == (0, 1, 2) and middle.dims(5) == (0, 3, 4)
    assert not middle.accepts_rank(2) and not grouped.accepts_rank(4)


@pytest.mark.parametrize(("text", "problem", "column", "width"), [
    ("n t (j (c))", r"nested parentheses", 7, 1),
    ("n t (j c", r"'\(' is never closed", 4, 1),
    ("n t j c)", r"'\)' closes no group", 7, 1),
    ("n () t", r"empty group '\(\)'", 2, 2),
    ("n j t j", r"axis name 'j' repeated \(first at position 2\)", 6, 1),
    ("n (j c) c", r"axis name 'c' repeated", 8, 1),
    ("n (... j) c", r"'\.\.\.' inside a group", 3, 3),
    ("... j ... c", r"a second '\.\.\.'", 6, 3),
    ("n t-j c", r"unexpected character '-'", 3, 1),
    ("n .. j", r"unexpected character '\.'", 2, 1),
    ("n 2d j", r"axis name '2d' starts with a digit", 2, 2),
])
def test_bad_layout_points_at_token(text: str, problem: str, column: int, width: int) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        parse_layout(text)
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"invalid layout {text!r}: ")
    assert lines[1] == "    " + text
    assert lines[2] == "    " + " " * column + "^" * width
    assert len(lines) >= 4 and lines[3]  # a line saying how to fix it


def test_parse_layout_rejects_non_string() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        parse_layout(["n", "j"])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- construction
def test_defaults_and_views() -> None:
    spec = Spec(input="n t j c", output="n t j c", skeleton="h36m")
    assert spec.n_inputs == 1 and spec.n_outputs == 1
    assert spec.negate == (0,) and spec.output_negate == (0,)
    assert spec.skeleton == Skeleton.preset("h36m") and spec.output_skeleton is spec.skeleton
    assert spec.inputs == (parse_layout("n t j c"),)
    assert repr(spec) == "Spec(input='n t j c', output='n t j c', skeleton='h36m', negate=(0,))"

    two = Spec(input="n t (j c)", output=("n t j c", "n k"), skeleton="coco",
               output_skeleton="h36m", negate=(0,), output_negate=(0,))
    assert two.n_outputs == 2 and two.output_skeleton.name == "h36m"
    assert not two.is_invariant_output(0) and two.is_invariant_output(1)
    assert two.is_invariant_output(-1)
    assert "output=('n t j c', 'n k')" in repr(two) and "output_skeleton='h36m'" in repr(two)


def test_construction_errors_name_the_tensor() -> None:
    with pytest.raises(ValueError, match=r"Spec input 1: invalid layout 'n \(j'.*never closed"):
        Spec(input=("n t j c", "n (j"), output="n k", skeleton="h36m")
    with pytest.raises(ValueError, match=r"Spec output 0: invalid layout 'n j j'"):
        Spec(input="n j c", output="n j j", skeleton="h36m")
    with pytest.raises(ValueError, match=r"Spec input 0 \(layout 'n \(t j c\)'\): the layout can't "
                                         r"be split: group '\(t j c\)'.*'t', 'c'.*'n t j c'"):
        Spec(input="n (t j c)", output="n k", skeleton="h36m")
    with pytest.raises(ValueError, match=r"group '\(c m\)'.*such as '\.\.\. c m'"):
        Spec(input="n j c", output="... (c m)", skeleton="h36m")
    with pytest.raises(ValueError, match=r"names neither the joints axis 'j' nor the coord"):
        Spec(input="n t J C", output="n k", skeleton="h36m")
    with pytest.raises(ValueError, match=r"lists coordinate 0 twice"):
        Spec(input="n j c", output="n k", skeleton="h36m", negate=(0, 0))
    with pytest.raises(ValueError, match=r"Spec output is empty"):
        Spec(input="n j c", output=(), skeleton="h36m")
    with pytest.raises(TypeError, match=r"Spec input 1: a layout must be a string"):
        Spec(input=("n j c", 3), output="n k", skeleton="h36m")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"output_negate must hold integer"):
        Spec(input="n j c", output="n k", skeleton="h36m", output_negate=("x",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown skeleton preset 'h37m'"):
        Spec(input="n j c", output="n k", skeleton="h37m")
    with pytest.raises(IndexError, match=r"output index 2 is out of range: the Spec has 1 output"):
        Spec(input="n j c", output="n k", skeleton="h36m").output_axes(2, (1, 3))


# ----------------------------------------------------------------------------- axis Reps
def test_axis_reps_of_a_grouped_layout() -> None:
    spec = Spec(input="n t (j c)", output=("n t j c", "n k"), skeleton="coco",
                output_skeleton="h36m", negate=(0,), output_negate=(0,))
    assert spec.input_axes(0, (2, 5, 34)) == {2: Rep.joints("coco").kron(Rep.coords(2, (0,)))}
    assert spec.output_axes(0, torch.Size([2, 5, 17, 3])) == {
        2: Rep.joints("h36m"), 3: Rep.coords(3, (0,))}
    assert spec.output_axes(1, (2, 60)) == {}
    # an untouched member of a group is inferred and contributes Rep.trivial
    flat = Spec(input="n (t j) c", output=None, skeleton="h36m")
    assert flat.input_axes(0, (2, 4 * 17, 3)) == {
        1: Rep.trivial(4).kron(Rep.joints("h36m")), 2: Rep.coords(3, (0,))}
    coords_first = Spec(input="n (c j)", output=None, skeleton="h36m")
    assert coords_first.input_axes(0, (1, 51)) == {1: Rep.coords(3, (0,)).kron(Rep.joints("h36m"))}


def test_h36m_mirror_matches_hand_written_in_every_layout() -> None:
    sk = Skeleton.preset("h36m")
    x = torch.randn(2, 5, 17, 2)
    expected = x.clone()
    expected[:, :, list(sk.left)] = x[:, :, list(sk.right)]
    expected[:, :, list(sk.right)] = x[:, :, list(sk.left)]
    expected[..., 0] = -expected[..., 0]
    assert not torch.equal(expected, x)

    plain = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))
    assert torch.equal(plain.mirror_input(0, x), expected)
    assert torch.equal(plain.mirror_output(0, x), expected)

    flat = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m")
    assert torch.equal(flat.mirror_input(0, x.reshape(2, 5, 34)), expected.reshape(2, 5, 34))

    def to_jct(t: torch.Tensor) -> torch.Tensor:
        return t.permute(0, 2, 3, 1).reshape(2, 34, 5)

    moved = Spec(input="n (j c) t", output="n (j c) t", skeleton="h36m")
    assert torch.equal(moved.mirror_input(0, to_jct(x)), to_jct(expected))

    both = Spec(input="(n t) (j c)", output="n k", skeleton="h36m")
    assert torch.equal(both.mirror_input(0, x.reshape(10, 34)), expected.reshape(10, 34))

    ellipsis = Spec(input="... j c", output="n k", skeleton="h36m")
    assert torch.equal(ellipsis.mirror_input(0, x), expected)
    assert torch.equal(ellipsis.mirror_input(0, x[0, 0]), expected[0, 0])


def test_stgcn_layout_keeps_confidence_and_persons() -> None:
    spec = Spec(input="n c t j m", output="n k", skeleton="openpose", negate=(0,))
    perm = hand_perm("openpose")
    x = torch.randn(2, 3, 4, 18, 2)  # (N, C=x/y/confidence, T, J, M persons)
    y = spec.mirror_input(0, x)
    assert torch.equal(y[:, 0], -x[:, 0][:, :, perm])
    assert torch.equal(y[:, 1], x[:, 1][:, :, perm])
    assert torch.equal(y[:, 2], x[:, 2][:, :, perm])  # confidence: only moved, never negated
    assert torch.allclose(y[:, 2].sum(2), x[:, 2].sum(2))
    for m in range(2):  # persons stay in place: each person is mirrored on its own
        assert torch.equal(y[..., m], spec.mirror_input(0, x[..., m:m + 1])[..., 0])
    assert set(spec.input_axes(0, x.shape)) == {1, 3}
    logits = torch.randn(2, 60)
    assert spec.output_axes(0, logits.shape) == {}
    assert torch.equal(spec.mirror_output(0, logits), logits)


def test_coco_2d_in_h36m_3d_out() -> None:
    spec = Spec(input="n t (j c)", output=("n t j c", "n k"), skeleton="coco",
                output_skeleton="h36m", negate=(0,), output_negate=(0,))
    assert hand_perm("coco") != hand_perm("h36m")
    x = torch.randn(2, 5, 17, 2)
    assert torch.equal(spec.mirror_input(0, x.reshape(2, 5, 34)),
                       hand_mirror(x, "coco", 2, 3, (0,)).reshape(2, 5, 34))
    y = torch.randn(2, 5, 17, 3)
    mirrored = spec.mirror_output(0, y)
    assert torch.equal(mirrored, hand_mirror(y, "h36m", 2, 3, (0,)))
    assert torch.equal(mirrored[..., 1:], y[:, :, hand_perm("h36m"), 1:])
    with pytest.raises(ValueError, match=r"Spec output 0 .*axis 2 \('j'\) has size 15 but skeleton "
                                         r"'h36m' has 17 joints.*output_skeleton"):
        spec.output_axes(0, (2, 5, 15, 3))


def test_joints_only_and_coords_only() -> None:
    conf = Spec(input="n t j c", output=("n j", "n c"), skeleton="h36m")
    s, v = torch.randn(3, 17), torch.randn(3, 3)
    assert torch.equal(conf.mirror_output(0, s), s[:, hand_perm("h36m")])
    assert torch.equal(conf.mirror_output(1, v), v * torch.tensor([-1.0, 1.0, 1.0]))


def test_invariant_outputs_are_identity() -> None:
    spec = Spec(input="n j c", output=("n k", None, "", "n ... k"), skeleton="smpl")
    logits, anything, scalar = torch.randn(4, 10), torch.randn(2, 3, 5, 7), torch.tensor(1.5)
    for index, y in [(0, logits), (1, anything), (1, scalar), (2, scalar), (3, anything)]:
        assert spec.is_invariant_output(index)
        assert spec.output_axes(index, y.shape) == {}
        assert torch.equal(spec.mirror_output(index, y), y)
    with pytest.raises(ValueError, match=r"Spec output 0 \(layout 'n k'\): the tensor has 3 axes"):
        spec.output_axes(0, (4, 10, 1))


# ----------------------------------------------------------------------------- shape errors
def test_rank_mismatch_message() -> None:
    spec = Spec(input=("n t j c", "... j c"), output="n k", skeleton="h36m")
    with pytest.raises(ValueError, match=r"Spec input 0 \(layout 'n t j c'\): the tensor has 3 axes "
                                         r"\(shape \(2, 17, 2\)\) but the layout names 4"):
        spec.input_axes(0, (2, 17, 2))
    with pytest.raises(ValueError, match=r"Spec input 1 \(layout '\.\.\. j c'\): the tensor has 1 "
                                         r"axes .* names at least 2"):
        spec.mirror_input(1, torch.zeros(17))


def test_joint_count_message() -> None:
    spec = Spec(input="n t j c", output="n (j) c", skeleton="h36m")
    with pytest.raises(ValueError, match=r"Spec input 0 \(layout 'n t j c'\): axis 2 \('j'\) has size "
                                         r"15 but skeleton 'h36m' has 17 joints; pass a tensor"):
        spec.input_axes(0, (2, 5, 15, 2))
    with pytest.raises(ValueError, match=r"Spec output 0 .*axis 1 \('j'\) has size 16 but "
                                         r"skeleton 'h36m' has 17 joints"):
        spec.output_axes(0, (2, 16, 3))


def test_group_divisibility_message() -> None:
    spec = Spec(input="n t (j c)", output="n (t j)", skeleton="coco")
    with pytest.raises(ValueError, match=r"Spec input 0 \(layout 'n t \(j c\)'\): axis 2 "
                                         r"\('\(j c\)'\) has size 33, which is not a multiple of "
                                         r"the 17 joints of skeleton 'coco', so 'c' can't be "
                                         r"inferred"):
        spec.input_axes(0, (2, 5, 33))
    with pytest.raises(ValueError, match=r"Spec output 0 .*axis 1 \('\(t j\)'\) has size 50.*'t'"):
        spec.output_axes(0, (2, 50))


def test_negate_out_of_range_message() -> None:
    with pytest.raises(ValueError, match=r"negate = \(-2,\): coordinate -2 is negative; use the "
                                         r"index counted from 0"):
        Spec(input="n j c", output="n j c", skeleton="h36m", negate=(-2,))
    ok = Spec(input="n j c", output="n j c", skeleton="h36m", negate=(0,), output_negate=(2,))
    assert ok.input_axes(0, (1, 17, 2)) == {1: Rep.joints("h36m"), 2: Rep.coords(2, (0,))}
    assert ok.output_axes(0, (1, 17, 3))[2] == Rep.coords(3, (2,))
    with pytest.raises(ValueError, match=r"Spec output 0 \(layout 'n j c'\): output_negate=\(2,\) "
                                         r"names coordinate 2 but axis 2 \('c'\) holds 2 "
                                         r"coordinates.*valid indices are 0\.\.1"):
        ok.output_axes(0, (1, 17, 2))
    spec = Spec(input="n (j c)", output="n k", skeleton="h36m", negate=(3,))
    with pytest.raises(ValueError, match=r"Spec input 0 .*negate=\(3,\) names coordinate 3 but "
                                         r"axis 1 \('\(j c\)'\) holds 2 coordinates \(C = 2\)"):
        spec.input_axes(0, (4, 34))


# ----------------------------------------------------------------------------- random layouts
def _splittable(group: list[str]) -> bool:
    return not ({"j", "c"} & set(group)) or sum(name != "j" for name in group) <= 1


@st.composite
def random_layouts(draw: st.DrawFn) -> dict:
    """A shuffled, randomly grouped layout over j and/or c, untouched axes and maybe '...'."""
    preset = draw(st.sampled_from(Skeleton.presets()))
    mirrored = draw(st.sampled_from([("j", "c"), ("j", "c"), ("j",), ("c",)]))
    others = draw(st.lists(st.sampled_from(["n", "t", "m"]), unique=True, max_size=3))
    order = draw(st.permutations(list(mirrored) + others))
    groups: list[list[str]] = []
    for name in order:
        if groups and draw(st.booleans()) and _splittable(groups[-1] + [name]):
            groups[-1].append(name)
        else:
            groups.append([name])
    n_coords = draw(st.integers(1, 4))
    negate = tuple(draw(st.lists(st.integers(0, n_coords - 1), unique=True, max_size=n_coords)))
    sizes = {name: draw(st.integers(1, 3)) for name in others}
    sizes.update(j=len(Skeleton.preset(preset)), c=n_coords)
    ellipsis = draw(st.none() | st.integers(0, len(groups)))
    extra = draw(st.lists(st.integers(1, 3), max_size=2)) if ellipsis is not None else []
    return dict(preset=preset, groups=groups, sizes=sizes, negate=negate, ellipsis=ellipsis,
                extra=extra, seed=draw(st.integers(0, 2**31 - 1)))


@settings(derandomize=True)
@given(random_layouts())
def test_mirror_commutes_with_layout_and_is_an_involution(case: dict) -> None:
    groups, sizes, ellipsis, extra = case["groups"], case["sizes"], case["ellipsis"], case["extra"]
    tokens = ["(" + " ".join(g) + ")" if len(g) > 1 else g[0] for g in groups]
    if ellipsis is not None:
        tokens.insert(ellipsis, "...")
    layout = " ".join(tokens)

    # the unflattened tensor: one axis per name, the '...' axes where the '...' stands
    cut = len(groups) if ellipsis is None else ellipsis
    names = ([n for g in groups[:cut] for n in g] + ["..."] * len(extra)
             + [n for g in groups[cut:] for n in g])
    extra_sizes = iter(extra)
    shape = [sizes[n] if n != "..." else next(extra_sizes) for n in names]
    gen = torch.Generator().manual_seed(case["seed"])
    u = torch.randn(shape, generator=gen, dtype=torch.float64)
    j_dim = names.index("j") if "j" in names else None
    c_dim = names.index("c") if "c" in names else None
    expected_u = hand_mirror(u, case["preset"], j_dim, c_dim, case["negate"])

    grouped_shape = ([math.prod(sizes[n] for n in g) for g in groups[:cut]] + extra
                     + [math.prod(sizes[n] for n in g) for g in groups[cut:]])
    x, expected = u.reshape(grouped_shape), expected_u.reshape(grouped_shape)

    spec = Spec(input=layout, output=layout, skeleton=case["preset"], negate=case["negate"])
    mirrored = spec.mirror_input(0, x)
    assert torch.equal(mirrored, expected), layout
    assert torch.equal(spec.mirror_input(0, mirrored), x)
    assert torch.equal(spec.mirror_output(0, x), expected)
    axes = spec.input_axes(0, x.shape)
    dims = parse_layout(layout).dims(x.dim())
    touched = {d for g, d in zip(groups, dims) if {"j", "c"} & set(g)}
    assert set(axes) == touched
    assert all(rep.size == x.shape[d] for d, rep in axes.items())
