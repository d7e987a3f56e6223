"""Exceptions a user can cause, with messages a user can act on.

Everything raised as :class:`InputError` is the client's mistake: the HTTP
service maps it to a 4xx, the gRPC servicer to ``INVALID_ARGUMENT`` and the
command line to exit status 2. Anything else is an internal error and is not
swallowed.
"""


class InputError(ValueError):
    """The input (a recording, a window, a unit, a card) cannot be used as given."""


class RecordingError(InputError):
    """A recording is unreadable, empty or too short to form one window."""


class CardMismatchError(InputError):
    """A model card does not fit its model; the message names the field."""


class ModelUnavailableError(RuntimeError):
    """The model service cannot answer right now (restarting, shutting down, overloaded):
    HTTP 503 with ``Retry-After``, gRPC ``UNAVAILABLE``. Not the client's mistake, and
    not a fault of this process either: the client should retry shortly."""
