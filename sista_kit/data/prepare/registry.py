"""The datasets the prepare command knows: name -> reader returning a :class:`~.study.Collected`."""

from __future__ import annotations

from collections.abc import Callable

from . import chexpert, covidx, mimic, object_cxr, rsna, siim
from .study import Collected

DATASETS: dict[str, Callable[..., Collected]] = {
    "mimic-cxr": mimic.collect,
    "chexpert": chexpert.collect,
    "rsna": rsna.collect,
    "siim": siim.collect,
    "covidx": covidx.collect,
    "object-cxr": object_cxr.collect,
}
