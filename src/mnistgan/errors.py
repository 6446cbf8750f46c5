"""The one exception type for mistakes a user can make: bad input, bad files, bad flags.

The CLI turns a `UserError` into a single line on stderr and exit status 2; anything else is a
programming error and is allowed to raise with its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (a missing file, a bad flag, a corrupt checkpoint)."""
