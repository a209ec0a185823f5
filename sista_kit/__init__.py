"""sista_kit: medical vision-language pretraining with semantics-aware instance alignment (SIA) and
sparse token alignment (STA), fused Triton kernels, baselines and a transfer benchmark."""

__version__ = "0.1.0"
