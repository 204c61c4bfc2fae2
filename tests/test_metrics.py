"""Pose and action metrics against hand-computed values, for tensors and arrays alike."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from symmetrize.metrics import mpjpe, mpjve, n_mpjpe, p_mpjpe, pck, topk_accuracy

# Two poses of three joints; per-joint distances (by hand) 0, 5, 1 and 2, 0, 3.
PRED = np.array([[[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [1.0, 1.0, 1.0]],
                 [[2.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 3.0]]])
TARGET = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]],
                   [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])
DISTANCES = np.array([[0.0, 5.0, 1.0], [2.0, 0.0, 3.0]])


def _pose(seed: int = 0, shape: tuple[int, ...] = (4, 17, 3)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def _rotation(seed: int = 1) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q if np.linalg.det(q) > 0 else q @ np.diag([-1.0, 1.0, 1.0])


# -- hand-computed values -------------------------------------------------------------------------

def test_mpjpe_hand_values() -> None:
    assert mpjpe(PRED, TARGET) == pytest.approx(11 / 6)
    assert mpjpe(PRED[0], TARGET[0]) == pytest.approx(2.0)


def test_weighted_mpjpe_is_mean_of_weighted_distances() -> None:
    w = np.array([1.0, 0.0, 2.0])
    assert mpjpe(PRED, TARGET, weights=w) == pytest.approx(np.mean(w * DISTANCES))
    per_pose = np.array([[1.0], [0.0]])
    assert mpjpe(PRED, TARGET, weights=per_pose) == pytest.approx(6 / 6)


def test_p_mpjpe_undoes_rotation_scale_translation() -> None:
    target = _pose()
    pred = 2.5 * target @ _rotation() + np.array([1.0, -2.0, 0.5])
    assert mpjpe(pred, target) > 1.0
    assert p_mpjpe(pred, target) == pytest.approx(0.0, abs=1e-10)


def test_p_mpjpe_aligns_each_pose_separately() -> None:
    target = _pose(shape=(3, 5, 17, 3))
    pred = target.copy()
    for i in range(3):
        pred[i] = (i + 1.0) * target[i] @ _rotation(10 + i) + i
    assert p_mpjpe(pred, target) == pytest.approx(0.0, abs=1e-10)


def test_p_mpjpe_does_not_undo_a_reflection() -> None:
    target = _pose()
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, target) > 0.1
    # ... while a reflection composed with a rotation is still only a reflection
    assert p_mpjpe(mirrored @ _rotation(), target) > 0.1


def test_p_mpjpe_in_2d() -> None:
    target = _pose(shape=(2, 17, 2))
    angle = 0.7
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pred = 0.3 * target @ rot + 4.0
    assert p_mpjpe(pred, target) == pytest.approx(0.0, abs=1e-10)
    assert p_mpjpe(target * np.array([-1.0, 1.0]), target) > 0.1


def test_p_mpjpe_is_at_most_n_mpjpe_and_mpjpe() -> None:
    pred, target = _pose(0), _pose(1)
    assert p_mpjpe(pred, target) <= n_mpjpe(pred, target) + 1e-12
    assert n_mpjpe(pred, target) <= mpjpe(pred, target) + 1e-12


def test_p_mpjpe_of_a_collapsed_pose_is_finite() -> None:
    target = _pose(shape=(1, 5, 3))
    collapsed = np.ones_like(target)
    expected = np.linalg.norm(target - target.mean(-2, keepdims=True), axis=-1).mean()
    assert p_mpjpe(collapsed, target) == pytest.approx(expected)


def test_n_mpjpe_of_a_scaled_copy_is_zero() -> None:
    target = _pose()
    assert n_mpjpe(0.4 * target, target) == pytest.approx(0.0, abs=1e-12)
    # only scale: a translated copy is not aligned
    assert n_mpjpe(target + 1.0, target) > 0.1


def test_n_mpjpe_hand_value() -> None:
    # one pose, one joint: pred (1, 0), target (1, 1): best scale 1, error 1
    assert n_mpjpe(np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])) == pytest.approx(1.0)


def test_mpjve_of_constant_offset_is_zero_and_hand_value() -> None:
    target = _pose(shape=(2, 6, 17, 3))
    assert mpjve(target + np.array([0.3, -1.0, 2.0]), target) == pytest.approx(0.0, abs=1e-12)
    # one joint moving 0 -> (3, 4) in pred but still in target: velocity error 5 per frame
    pred = np.array([[[0.0, 0.0]], [[3.0, 4.0]]])
    still = np.zeros_like(pred)
    assert mpjve(pred, still) == pytest.approx(5.0)
    assert mpjve(pred, still, dt=0.5) == pytest.approx(10.0)


def test_mpjve_along_another_axis() -> None:
    target = _pose(shape=(5, 2, 17, 3))  # time first, then batch
    drift = np.arange(5.0)[:, None, None, None] * np.array([1.0, 0.0, 0.0])
    assert mpjve(target + drift, target, axis=0) == pytest.approx(1.0)
    assert mpjve(target + drift, target, axis=1) == pytest.approx(0.0, abs=1e-12)


def test_pck_thresholds_around_a_known_distance() -> None:
    assert pck(PRED, TARGET, threshold=2.99) == pytest.approx(4 / 6)  # 0, 1, 2, 0
    assert pck(PRED, TARGET, threshold=3.0) == pytest.approx(5 / 6)
    assert pck(PRED, TARGET, threshold=4.99) == pytest.approx(5 / 6)
    assert pck(PRED, TARGET, threshold=5.01) == pytest.approx(1.0)


def test_pck_normalized_per_pose() -> None:
    scale = np.array([10.0, 1.0])  # pose 0's distances become 0, .5, .1
    assert pck(PRED, TARGET, threshold=0.5, normalize=scale) == pytest.approx(4 / 6)
    assert pck(PRED, TARGET, threshold=0.5, normalize=2.0) == pytest.approx(3 / 6)


def test_topk_hand_logits() -> None:
    logits = np.array([[0.1, 0.9, 0.0, 0.5],
                       [0.8, 0.1, 0.3, 0.2],
                       [0.2, 0.3, 0.4, 0.1]])
    labels = np.array([1, 2, 0])  # ranks 0, 1, 2
    assert topk_accuracy(logits, labels, k=(1, 2, 3, 4)) == {
        1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: 1.0, 4: 1.0}
    assert topk_accuracy(torch.tensor(logits), torch.tensor(labels), k=2) == {
        2: pytest.approx(2 / 3)}


def test_topk_ties_count_against_the_label() -> None:
    logits = np.zeros((2, 3))
    assert topk_accuracy(logits, np.array([0, 2]), k=(1, 3)) == {1: 0.0, 3: 1.0}


def test_topk_with_leading_axes() -> None:
    logits = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    assert topk_accuracy(logits, np.array([[0, 1], [1, 0]]), k=1) == {1: 0.75}


# -- kinds, dtypes, autograd ----------------------------------------------------------------------

@pytest.mark.parametrize("metric", [mpjpe, p_mpjpe, n_mpjpe, mpjve])
def test_tensor_and_array_agree(metric) -> None:
    pred, target = _pose(0, (2, 4, 17, 3)), _pose(1, (2, 4, 17, 3))
    from_numpy = metric(pred, target)
    from_torch = metric(torch.tensor(pred), torch.tensor(target))
    assert isinstance(from_numpy, np.floating) and isinstance(from_torch, torch.Tensor)
    assert from_torch.dim() == 0
    assert float(from_torch) == pytest.approx(float(from_numpy), rel=1e-12)


def test_pck_tensor_and_array_agree() -> None:
    pred, target = _pose(0), _pose(1)
    scale = np.array([1.0, 2.0, 3.0, 4.0])
    a = pck(pred, target, 1.0, normalize=scale)
    b = pck(torch.tensor(pred), torch.tensor(target), 1.0, normalize=torch.tensor(scale))
    assert isinstance(a, np.floating) and isinstance(b, torch.Tensor) and float(b) == float(a)


def test_mixed_inputs_give_a_tensor() -> None:
    out = mpjpe(torch.tensor(PRED), TARGET)
    assert isinstance(out, torch.Tensor) and float(out) == pytest.approx(11 / 6)


@pytest.mark.parametrize("metric", [mpjpe, p_mpjpe, n_mpjpe, mpjve])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64(metric, dtype) -> None:
    pred, target = _pose(0, (2, 4, 17, 3)), _pose(1, (2, 4, 17, 3))
    exact = float(metric(pred, target))
    as_numpy = metric(pred.astype(dtype), target.astype(dtype))
    as_torch = metric(torch.tensor(pred.astype(dtype)), torch.tensor(target.astype(dtype)))
    assert as_numpy.dtype == dtype and as_torch.dtype == torch.from_numpy(pred.astype(dtype)).dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert float(as_numpy) == pytest.approx(exact, rel=tol)
    assert float(as_torch) == pytest.approx(exact, rel=tol)


def test_integer_inputs_are_floats() -> None:
    assert mpjpe(np.array([[3, 4]]), np.array([[0, 0]])) == pytest.approx(5.0)


def test_mpjpe_gradient_flows() -> None:
    pred = torch.tensor(PRED, requires_grad=True)
    mpjpe(pred, torch.tensor(TARGET)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    # d/dpred of |pred - target| / 6 at joint (0, 1): unit vector (3, 4)/5, over 6 distances
    assert torch.allclose(pred.grad[0, 1], torch.tensor([0.6, 0.8, 0.0], dtype=torch.float64) / 6)
    # zero distance: finite (zero) gradient
    assert torch.equal(pred.grad[0, 0], torch.zeros(3, dtype=torch.float64))


def test_mpjpe_as_a_loss_decreases() -> None:
    target = torch.tensor(_pose(), dtype=torch.float32)
    pred = torch.zeros_like(target, requires_grad=True)
    opt = torch.optim.SGD([pred], lr=30.0)  # gradient 1/68 per joint
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss = mpjpe(pred, target)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first / 2


def test_p_and_n_mpjpe_gradients_flow() -> None:
    pred = torch.tensor(_pose(0), requires_grad=True)
    target = torch.tensor(_pose(1))
    (p_mpjpe(pred, target) + n_mpjpe(pred, target)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


# -- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("metric", [mpjpe, p_mpjpe, n_mpjpe, mpjve])
def test_shape_mismatch_names_both_shapes(metric) -> None:
    with pytest.raises(ValueError, match=r"\(2, 4, 17, 3\).*\(2, 4, 17, 2\)"):
        metric(np.zeros((2, 4, 17, 3)), np.zeros((2, 4, 17, 2)))


def test_too_few_dimensions() -> None:
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        mpjpe(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        mpjve(np.zeros((17, 3)), np.zeros((17, 3)))


def test_empty_inputs() -> None:
    with pytest.raises(ValueError, match="empty"):
        mpjpe(np.zeros((0, 17, 3)), np.zeros((0, 17, 3)))
    with pytest.raises(ValueError, match="empty"):
        topk_accuracy(np.zeros((0, 5)), np.zeros(0, dtype=int), k=1)


@pytest.mark.parametrize("metric", [mpjpe, p_mpjpe, n_mpjpe])
def test_non_finite_inputs_are_counted(metric) -> None:
    pred = np.zeros((2, 17, 3))
    pred[0, 1, 2] = np.nan
    pred[1, 3, 0] = np.inf
    with pytest.raises(ValueError, match=r"pred contains 2 NaN/inf"):
        metric(pred, np.zeros((2, 17, 3)))
    with pytest.raises(ValueError, match=r"target contains 2 NaN/inf"):
        metric(torch.zeros(2, 17, 3), torch.from_numpy(pred))


def test_bad_weights_normalize_threshold() -> None:
    with pytest.raises(ValueError, match="weights of shape"):
        mpjpe(PRED, TARGET, weights=np.ones(4))
    with pytest.raises(ValueError, match="weights contains 1 NaN/inf"):
        mpjpe(PRED, TARGET, weights=np.array([1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="normalize of shape"):
        pck(PRED, TARGET, 0.5, normalize=np.ones(3))
    with pytest.raises(ValueError, match="normalize must be positive"):
        pck(PRED, TARGET, 0.5, normalize=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="threshold"):
        pck(PRED, TARGET, -1.0)


def test_mpjve_axis_and_frames() -> None:
    with pytest.raises(ValueError, match="not a leading"):
        mpjve(np.zeros((4, 17, 3)), np.zeros((4, 17, 3)), axis=-2)
    with pytest.raises(ValueError, match="at least 2 frames"):
        mpjve(np.zeros((1, 17, 3)), np.zeros((1, 17, 3)))
    with pytest.raises(ValueError, match="dt"):
        mpjve(np.zeros((4, 17, 3)), np.zeros((4, 17, 3)), dt=0.0)


def test_topk_validation() -> None:
    logits = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"k=5 is larger than the number of classes \(3\)"):
        topk_accuracy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match="positive integer"):
        topk_accuracy(logits, np.array([0, 1]), k=0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        topk_accuracy(np.zeros(3), np.array(0), k=1)
    with pytest.raises(ValueError, match="labels need shape"):
        topk_accuracy(logits, np.array([0, 1, 2]), k=1)
    with pytest.raises(ValueError, match="outside 0..2"):
        topk_accuracy(logits, np.array([0, 3]), k=1)
    with pytest.raises(TypeError, match="integers"):
        topk_accuracy(logits, np.array([0.0, 1.0]), k=1)
    with pytest.raises(ValueError, match="logits contains 1 NaN/inf"):
        topk_accuracy(np.array([[np.nan, 0.0, 1.0]]), np.array([0]), k=1)


def test_non_numeric_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="real numbers"):
        mpjpe(np.array([["a", "b"]]), np.array([["a", "b"]]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("metric", [mpjpe, p_mpjpe, n_mpjpe, mpjve])
def test_cuda_tensors_match_cpu(metric) -> None:
    pred, target = _pose(0, (2, 4, 17, 3)), _pose(1, (2, 4, 17, 3))
    on_gpu = metric(torch.tensor(pred, device="cuda"), target)  # numpy target follows pred
    assert on_gpu.device.type == "cuda"
    assert float(on_gpu) == pytest.approx(float(metric(pred, target)), rel=1e-10)
    logits = torch.tensor(_pose(2, (8, 6)), device="cuda")
    labels = torch.arange(8, device="cuda") % 6
    assert topk_accuracy(logits, labels, k=(1, 3)) == topk_accuracy(logits.cpu(), labels.cpu(),
                                                                      k=(1, 3))
