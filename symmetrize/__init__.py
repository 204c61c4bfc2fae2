"""symmetrize: make PyTorch human-pose networks chirality-equivariant.

Mirror a person (swap every left joint with its right twin, negate the horizontal coordinate) and an
equivariant network's output mirrors exactly; an invariant one does not change.
"""

from symmetrize.rep import Rep
from symmetrize.weight_sharing import WeightSharing, weight_sharing
from symmetrize.skeleton import Skeleton
from symmetrize.spec import Spec
from symmetrize.api import ConversionError, explain, report, symmetrize  # noqa: E402
from symmetrize.passes.check import CheckResult, check  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CheckResult",
    "ConversionError",
    "Rep",
    "Skeleton",
    "Spec",
    "WeightSharing",
    "__version__",
    "check",
    "explain",
    "report",
    "symmetrize",
    "weight_sharing",
]
