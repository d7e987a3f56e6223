"""``python -m har`` (and the ``har`` script): the command line, in :mod:`har.cli.commands`."""

from har.cli.commands import main

__all__ = ["main"]
