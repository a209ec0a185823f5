"""When a softmax of bounded logits can skip its max pass.

Logits of unit vectors at temperature t lie in [-1/t, 1/t]. Shifted by -1/t they lie in [-2/t, 0],
and exp of them, taken without subtracting a row maximum, gives every row and column log-sum-exp of
one buffer as long as exp(-2/t) is a normal number: rows never underflow to zero.
"""

from __future__ import annotations

import math

import torch

#: nats kept between exp(-span) and the smallest normal number (room for sums and rounding)
MARGIN = 8.0


def exp_fits(span: float, dtype: torch.dtype) -> bool:
    """Whether exp(x) is a normal number of ``dtype`` for every x in [-span, 0]."""
    return span <= -math.log(torch.finfo(dtype).tiny) - MARGIN
