"""Named presets: curation rules that fit a kind of text (`curator curate --preset NAME`).

A preset is a partial job config (no inputs or output) shipped as package data in
curator/presets/NAME.yaml, so it resolves the same from a source checkout and from an installed
wheel; configs/NAME.yaml in the repository is a symlink to it (one source of truth), for users
who prefer `--config`. Layering, lowest first: preset -> --config file -> --input/--output/
--quiet -> --set. Sections merge key by key, so a config file that sets one C4 field keeps the
preset's other C4 fields; lists (inputs, stop_words) are replaced whole.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from curator.config import ConfigError, read_config_file

PRESETS = ("web", "books", "code")


def preset_text(name: str) -> str:
    """The YAML text of preset `name`; ConfigError naming the choices if there is none."""
    if name not in PRESETS:
        raise ConfigError(f"--preset {name!r} is not a preset; use one of {', '.join(PRESETS)}")
    return resources.files(__name__).joinpath(f"{name}.yaml").read_text()


def load_preset(name: str) -> dict[str, Any]:
    data = yaml.safe_load(preset_text(name)) or {}
    if not isinstance(data, dict):  # a broken package, not a user error: say which file
        raise ConfigError(f"preset {name!r} must hold a mapping at top level")
    return data


def deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    """`high` over `low`, recursing where both hold a mapping (a new dict; inputs untouched)."""
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def layered(preset: str, config: Path | None, base: dict[str, Any]) -> dict[str, Any]:
    """Preset, then the --config file, then `base` (the command-line fields), merged."""
    data = load_preset(preset)
    if config is not None:
        data = deep_merge(data, read_config_file(config))
    return deep_merge(data, base)
