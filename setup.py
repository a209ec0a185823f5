"""Package discovery for the folder layout: kernels/ and baselines/ install under sista_kit."""

from setuptools import find_packages, setup

ROOTS = {"sista_kit": "sista_kit", "sista_kit.kernels": "kernels", "sista_kit.baselines": "baselines"}

packages = [
    f"{name}.{sub}" if sub else name
    for name, folder in ROOTS.items()
    for sub in ["", *find_packages(folder)]
    if not (name == "sista_kit" and sub.split(".")[0] in ("kernels", "baselines"))
]

setup(packages=packages, package_dir=ROOTS)
