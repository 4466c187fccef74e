"""Faults a stage reports in one line (what failed, where, what to do) instead of a traceback."""


class StageError(Exception):
    """A fault with a one-line cause: the stage prints `error: <message>` and exits 1."""
