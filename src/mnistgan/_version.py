"""The package version, in a leaf module every other module may import (pyproject.toml has the
same number)."""

__version__ = "0.1.0"
