"""ConVIRT (Zhang et al., 2020): asymmetric-weight bidirectional InfoNCE on global embeddings.

    L = mean_i [ lambda * l_i(v -> u) + (1 - lambda) * l_i(u -> v) ]
    l_i(v -> u) = -log( exp(<v_i, u_i> / tau) / sum_k exp(<v_i, u_k> / tau) ),  <., .> = cosine

with lambda = 0.75 and tau = 0.1 (the paper's values). There is no official code; the tests check
this formula on hand-computed cases. The temperature is fixed: the model's ``logit_scale`` is ignored.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sista_kit.checks import ValueChecks, check_batch, check_positive, check_range, check_tensor, same_size
from sista_kit.losses.distributed import gather_with_grad
from sista_kit.losses.registry import register_loss


def convirt_loss(
    image_features: Tensor,
    text_features: Tensor,
    *,
    lambda_: float = 0.75,
    temperature: float = 0.1,
    output_dict: bool = False,
    check_finite: bool = True,
) -> Tensor | dict[str, Tensor]:
    """ConVIRT loss of a batch of paired global embeddings.

    Args:
        image_features: (B, E) image embeddings (normalised here; cosine similarity).
        text_features: (B, E) report embeddings.
        lambda_: weight of the image->text direction; text->image gets ``1 - lambda_``.
        temperature: tau, a divisor of the cosine.
        output_dict: return ``{"loss", "i2t", "t2i", "logits"}`` (unweighted directions) instead of
            the scalar loss.
        check_finite: run the value checks (NaN / inf) under the policy of :mod:`sista_kit.checks`.

    Returns:
        The scalar loss, or the dict described above (``logits``: (B, B), rows = images).
    """
    check_range("lambda_", lambda_, 0.0, 1.0)
    check_positive("temperature", temperature)
    check_tensor("image_features", image_features, (None, None))
    check_tensor("text_features", text_features, (None, None))
    batch = check_batch(
        "ConVIRT", image_features=image_features.shape[0], text_features=text_features.shape[0]
    )
    same_size("embedding size", image_features=image_features.shape[1], text_features=text_features.shape[1])
    ValueChecks(check_finite).finite("image_features", image_features).finite(
        "text_features", text_features
    ).run()

    v = F.normalize(image_features, dim=-1)
    u = F.normalize(text_features, dim=-1)
    logits = v @ u.t() / temperature
    labels = torch.arange(batch, device=logits.device)
    i2t = F.cross_entropy(logits, labels)
    t2i = F.cross_entropy(logits.t(), labels)
    loss = lambda_ * i2t + (1.0 - lambda_) * t2i
    if output_dict:
        return {"loss": loss, "i2t": i2t, "t2i": t2i, "logits": logits}
    return loss


@register_loss("convirt")
class ConVIRTLoss(nn.Module):
    """ConVIRT as an open_clip-style loss module.

    Args:
        lambda_, temperature: see :func:`convirt_loss`.
        check_finite: run the value checks (NaN / inf).
        gather: under torch.distributed, contrast over the global batch (features all-gathered with
            gradient, as the SISTA losses and open_clip do), so that N processes give the loss of one
            process on the whole batch. False = the local batch of each rank only, as a per-GPU
            implementation of the paper does (fewer negatives; values not comparable across world
            sizes). Every rank must have the same batch size.

    Forward takes the model output as keywords (uses ``image_features`` and ``text_features``, ignores
    the rest, ``logit_scale`` included) and returns ``{"i2t_loss": lambda * l(v->u),
    "t2i_loss": (1 - lambda) * l(u->v)}`` with ``output_dict=True``, else their sum.
    """

    def __init__(
        self, lambda_: float = 0.75, temperature: float = 0.1, check_finite: bool = True, gather: bool = True
    ):
        super().__init__()
        check_range("lambda_", lambda_, 0.0, 1.0)
        check_positive("temperature", temperature)
        self.lambda_, self.temperature, self.check_finite = lambda_, temperature, check_finite
        self.gather = gather

    def forward(
        self, image_features: Tensor, text_features: Tensor, output_dict: bool = False, **kwargs: Any
    ) -> Tensor | dict[str, Tensor]:
        if self.gather:
            image_features, text_features = gather_with_grad(image_features), gather_with_grad(text_features)
        out = convirt_loss(
            image_features,
            text_features,
            lambda_=self.lambda_,
            temperature=self.temperature,
            output_dict=True,
            check_finite=self.check_finite,
        )
        terms = {"i2t_loss": self.lambda_ * out["i2t"], "t2i_loss": (1.0 - self.lambda_) * out["t2i"]}
        return terms if output_dict else terms["i2t_loss"] + terms["t2i_loss"]

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}, temperature={self.temperature}, gather={self.gather}"
