"""Loss modules: thin wrappers of the functional losses with a ``reduction``."""
from __future__ import annotations

from ..ops import functional as OF
from ..ops.loss import check_reduction
from ..tensor import Tensor
from .module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction


class MSELoss(_Loss):
    """Mean squared error: ``mean((input - target)**2)``."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return OF.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return OF.l1_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits against class indices or class probabilities."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return OF.cross_entropy(input, target, reduction=self.reduction)


class NLLLoss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return OF.nll_loss(input, target, reduction=self.reduction)


class BCELoss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return OF.binary_cross_entropy(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return OF.binary_cross_entropy_with_logits(input, target, reduction=self.reduction)
