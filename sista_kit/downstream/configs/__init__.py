"""mmengine Python config files shipped with sista_kit (segmentation and detection).

Use them by path (``config_path('seg_fpn_vit_synthetic')``) with mmengine's ``Config.fromfile``, or by
name with ``python -m sista_kit.downstream seg --config seg_fpn_vit_synthetic``. Every file is a
complete experiment on the sista_kit disk export layout; the entry point fills in the checkpoint,
data root, label fraction, seed, schedule length and the channel / stride figures of the backbone.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def list_configs(prefix: str = "") -> list[str]:
    """Names of the shipped configs (file stems), optionally those starting with ``prefix``."""
    return sorted(
        p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem.startswith(prefix)
    )


def config_path(name: str | Path) -> Path:
    """Path of a shipped config by name (``seg_fpn_vit_synthetic``), or ``name`` if it is a file."""
    p = Path(name)
    if p.suffix == ".py" and p.is_file():
        return p.resolve()
    shipped = CONFIG_DIR / f"{p.stem}.py"
    if p.stem.startswith("_") or not shipped.is_file():
        raise FileNotFoundError(f"no config file {name!r}; shipped configs: {', '.join(list_configs())}")
    return shipped
