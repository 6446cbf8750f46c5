"""Config files for `mnistgan train --config FILE` and `--print-config`.

A config file has the keys of `RUN/config.json`: `preset`, then the tables `[data]`, `[model]`,
`[optim]` and `[train]`, in TOML (or YAML, when PyYAML is installed). Any key may be left out:
the file is laid over the preset it names (`preset = "cdcgan"`), or over the shipped preset of
its own name, or over the dataclass defaults, the way a shipped preset is laid over them; so the
shipped presets are themselves config files. `to_toml` writes a whole resolved config, which
reads back to the same `RunConfig`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from mnistgan.config import RunConfig, load_preset, preset_names
from mnistgan.errors import UserError


def read_config_file(path: str | os.PathLike, preset: str | None = None) -> RunConfig:
    """The `RunConfig` a config file describes; `preset` (the --preset flag) overrides the file's.

    Unknown keys, wrong types and bad values are a `UserError` naming the file and the key."""
    path = Path(path)
    d = _parse(path)
    name = preset or d.get("preset") or path.stem
    if not isinstance(name, str):
        raise UserError(f"--config {path}: config: preset must be str, got {name!r}")
    # An explicit --preset must be a shipped one; a file's own name only picks a base if it is.
    base = load_preset(name) if preset or name in preset_names() else RunConfig()
    merged = base.to_dict()
    for key, value in d.items():
        both_tables = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if both_tables else value
    merged["preset"] = name
    try:
        return RunConfig.from_dict(merged)
    except UserError as e:
        raise UserError(f"--config {path}: {e}") from None


def _parse(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"--config {path}: cannot read ({e.strerror or e})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            # lazy: an optional dependency, for this format only
            import yaml
        except ImportError:
            raise UserError(f"--config {path}: YAML needs PyYAML (pip install pyyaml), "
                            "or write the file in TOML") from None
        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UserError(f"--config {path}: not valid YAML ({_one_line(e)})") from None
        d = {} if d is None else d
    else:
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"--config {path}: not valid TOML ({_one_line(e)})") from None
    if not isinstance(d, dict):
        raise UserError(f"--config {path}: the top level must be a table of keys")
    return d


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def to_toml(cfg: RunConfig) -> str:
    """The whole config as TOML. TOML has no null, so an unset value (`max_steps`, say) is
    written as a comment; reading the file back leaves it at its default, which is unset."""
    # lazy: an optional dependency, for this format only
    import tomli_w

    d = cfg.to_dict()
    lines = ["# mnistgan run config: rerun with `mnistgan train --config FILE`",
             tomli_w.dumps({"preset": d.pop("preset")}).strip()]
    for section, values in d.items():
        lines += ["", f"[{section}]"]
        for key, value in values.items():
            if value is None:
                lines.append(f"# {key} = (unset)")
            else:
                lines.append(tomli_w.dumps({key: value}).strip())
    return "\n".join(lines) + "\n"


__all__ = ["read_config_file", "to_toml"]
