"""Stateless building blocks, written with elementwise and reduction tensor ops only.

Every function here is traceable (torch.jit.trace) and exportable
(torch.onnx.export(dynamo=True)): no Python branching on tensor values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "conv2d",
    "dropout",
    "linear",
    "max_pool2d",
    "pair",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair."""
    if isinstance(value, int):
        return (value, value)
    h, w = value
    return (int(h), int(w))


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return torch.clamp(x, min=0.0)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), evaluated so exp never overflows."""
    # exp(-|x|) is in (0, 1]; the naive form overflows for x << 0 and its
    # gradient becomes inf/inf = nan there.
    e = torch.exp(-torch.abs(x))
    return torch.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(x: Tensor) -> Tensor:
    """(1 - exp(-2|x|)) / (1 + exp(-2|x|)) with the sign of x; overflow-free."""
    e = torch.exp(-2.0 * torch.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return torch.where(x >= 0, t, -t)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, shifted by the max for stability."""
    # The shift is a constant per slice, so it changes nothing mathematically;
    # detaching it keeps the gradient graph small (its gradient sums to zero).
    shifted = x - torch.amax(x, dim=dim, keepdim=True).detach()
    e = torch.exp(shifted)
    return e / torch.sum(e, dim=dim, keepdim=True)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale survivors by 1/(1-p)."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    keep = (torch.rand_like(x) >= p).to(x.dtype)
    return x * keep * (1.0 / (1.0 - p))


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, weight shaped [out, in]; any number of leading dims."""
    y = torch.matmul(x, weight.t())
    if bias is not None:
        y = y + bias
    return y


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """2-D cross-correlation of x [N, C, H, W] with weight [O, C, kh, kw] -> [N, O, Ho, Wo].

    Patches come from ``Tensor.unfold`` (a sliding-window view) and are
    contracted with the weight in one matmul.
    """
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    kh, kw = weight.shape[2], weight.shape[3]
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    # [N, C, Ho, Wo, kh, kw] -> [N, Ho, Wo, C*kh*kw]; the flatten order (C, kh, kw)
    # matches weight.reshape(O, -1).
    patches = x.unfold(2, kh, sh).unfold(3, kw, sw)
    patches = patches.permute(0, 2, 3, 1, 4, 5).flatten(3)
    y = torch.matmul(patches, weight.flatten(1).t())  # [N, Ho, Wo, O]
    if bias is not None:
        y = y + bias
    return y.permute(0, 3, 1, 2)


def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
) -> Tensor:
    """Max over kh x kw windows of x [N, C, H, W]; stride defaults to the kernel size. No padding."""
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride) if stride is not None else (kh, kw)
    return torch.amax(x.unfold(2, kh, sh).unfold(3, kw, sw), dim=(-2, -1))
