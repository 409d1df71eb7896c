"""UserError: the base of every error a user caused and can fix (a bad config, a missing file, an
unusable dataset or model). Its message names the field or line as the user wrote it, what is accepted
and the fix, so front ends show the message alone — the CLI prints it without a traceback, the API
answers 4xx with it. Anything else escaping a command is a bug and is reported as one."""

from __future__ import annotations


class UserError(ValueError):
    """An error the user can fix from its message alone."""
