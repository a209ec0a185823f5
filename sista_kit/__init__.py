"""sista_kit: medical vision-language pretraining with semantics-aware instance alignment (SIA) and
sparse token alignment (STA), fused Triton kernels, baselines and a transfer benchmark.

Importing the package does nothing beyond defining ``__version__``; the layers (data -> models ->
losses -> train -> downstream / eval), how losses are found by name and where side effects happen
are described in docs/architecture.md.
"""

__version__ = "0.1.0"
