"""Every exception mnistgan defines, in one place.

`UserError` and its subclasses are mistakes a user can make or fix (bad input, bad files, bad
flags, a run that diverged): the CLI turns each into one line on stderr and exit status 2.
`NotFound` is internal: a data source that holds none of the data, collected into the one
`UserError` that lists every source tried. Anything else is a programming error and is allowed
to raise with its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (a missing file, a bad flag, a corrupt checkpoint)."""


class CheckpointMismatch(UserError):
    """A checkpoint this mnistgan cannot use: a foreign config, or weights that do not fit it."""


class Diverged(UserError):
    """Training produced a NaN or inf in a loss or a gradient; the last good checkpoint is kept."""


class IdxError(UserError):
    """An IDX file that is unreadable, truncated or not what it claims to be."""


class NotFound(Exception):
    """A data source holds none of the data set; the message says why, for the final report."""
