"""The one exception type for mistakes a user can make: bad input, bad files, bad flags.

The CLI turns a `UserError` into a single line on stderr and exit status 2; anything else is a
programming error and is allowed to raise with its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (a missing file, a bad flag, a corrupt checkpoint)."""


class CheckpointMismatch(UserError):
    """A checkpoint this mnistgan cannot use: a foreign config, or weights that do not fit it."""


class Diverged(UserError):
    """Training produced a NaN or inf in a loss or a gradient; the last good checkpoint is kept."""
