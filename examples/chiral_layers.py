"""Build chirality-equivariant networks by hand from the layer library.

Two small pose models: a 2D pose forecaster (an LSTM encoder over H36M keypoints with a linear
read-out) and an action classifier made invariant by an invariance layer. Each is checked on a
mirrored input. Run: ``python examples/chiral_layers.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from symmetrize import Rep, Skeleton
from symmetrize.nn import ChiralActivation, ChiralLinear, ChiralLSTM, InvariantLinear


class Forecaster(nn.Module):
    """Predict the next 2D pose from a sequence of 2D poses (N, T, J*2), residually."""

    def __init__(self, skeleton: Skeleton, dims_per_joint: int = 8) -> None:
        super().__init__()
        self.pose = Rep.pose(skeleton, 2, negate=(0,))
        # half of each joint's hidden dims flip sign, as the paper does for 2D forecasting
        hidden = Rep.skeleton_hidden(skeleton, dims_per_joint, dims_per_joint // 2)
        self.lstm = ChiralLSTM(self.pose, hidden, num_layers=2, batch_first=True)
        self.out = ChiralLinear(hidden, self.pose)

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        features, _ = self.lstm(poses)
        return poses[:, -1] + self.out(features[:, -1])


class ActionClassifier(nn.Module):
    """Classify a clip (N, T, J*3) of 3D poses; mirrored clips get identical logits."""

    def __init__(self, skeleton: Skeleton, classes: int = 6) -> None:
        super().__init__()
        self.pose = Rep.pose(skeleton, 3, negate=(0,))
        hidden = Rep.skeleton_hidden(skeleton, 6, 2)
        self.features = nn.Sequential(ChiralLinear(self.pose, hidden), ChiralActivation(hidden, dim=-1))
        # the invariance layer: from here on nothing changes under the mirror, so plain layers follow
        self.invariant = InvariantLinear(hidden, 64)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(64, classes))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.head(self.invariant(self.features(clip)).mean(dim=1))


def main() -> None:
    torch.manual_seed(0)
    skeleton = Skeleton.preset("h36m")
    forecaster = Forecaster(skeleton).double().eval()
    poses = torch.randn(4, 10, 34, dtype=torch.float64)
    mirrored = forecaster.pose.apply(poses)
    error = (forecaster(mirrored) - forecaster.pose.apply(forecaster(poses))).abs().max().item()
    print(f"forecaster: {sum(p.numel() for p in forecaster.parameters()):,} parameters, "
          f"|f(Tx) - T f(x)| = {error:.1e}")

    classifier = ActionClassifier(skeleton).double().eval()
    clip = torch.randn(4, 30, 51, dtype=torch.float64)
    error = (classifier(classifier.pose.apply(clip)) - classifier(clip)).abs().max().item()
    print(f"classifier: {sum(p.numel() for p in classifier.parameters()):,} parameters, "
          f"|f(Tx) - f(x)| = {error:.1e}")


if __name__ == "__main__":
    main()
