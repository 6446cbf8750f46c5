"""The shipped presets: one TOML file per preset, with the keys of `RunConfig` (see config.py)."""
