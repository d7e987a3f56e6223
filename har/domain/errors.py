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


#: Characters of a client's string quoted back in an error message.
QUOTE_CHARS = 40


class OutOfRangeNumber:
    """A JSON number too large for a double, as ``har.http.request_body`` reads it (its text):
    numpy refuses to convert it, and the message says where it was and what it was."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        digits = len(self.text.lstrip("-"))
        return self.text if digits <= 24 else f"{self.text[:12]}... ({digits} characters)"


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """A client's value for an error message, never the whole of a large one.

    A string is quoted (cut at ``limit`` characters), a number shown, anything else named
    by its JSON type: ``repr`` of a 64 MB string is 64 MB, and of a list nested ~1,000
    deep it raises ``RecursionError``.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float, OutOfRangeNumber)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"
