"""Gradient reversal layer (Ganin & Lempitsky, ICML 2015): identity forward, gradient times -coeff backward."""
import torch
from torch import nn


class _ReverseGradient(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return -ctx.coeff * grad_output, None


def reverse_gradient(x, coeff=1.0):
    """Return ``x`` unchanged; in the backward pass the gradient reaching ``x`` is multiplied by ``-coeff``."""
    return _ReverseGradient.apply(x, coeff)


class GradientReversal(nn.Module):
    """Module form of :func:`reverse_gradient`."""

    def __init__(self, coeff=1.0):
        super().__init__()
        self.coeff = coeff

    def forward(self, x):
        return reverse_gradient(x, self.coeff)
