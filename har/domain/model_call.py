"""The type of the model call the core awaits, without importing the model runtime.

:class:`~har.runtime.inference.CompiledModel` (TensorFlow), :class:`~har.serving.model_client.ModelClient`
(the model service over HTTP), :class:`~har.serving.coalescing.Coalescer` and the shadow tap all
are, or wrap, an :data:`Infer`; this module imports only numpy, so importing any of them
does not import :mod:`har.runtime.inference`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar

import numpy as np

#: An async model function: ``(N, window, 6)`` float32 scaled windows ->
#: ``(N, n_classes)`` probabilities (the model service's call, or a compiled model).
Infer = Callable[[np.ndarray], Awaitable[np.ndarray]]

#: Faults a test may inject into the model call of one request (``HAR_FAULT_INJECTION=1``,
#: har/grpc/observability.py): ``internal`` fails it as a broken model would,
#: ``unavailable`` as an unreachable model service.
FAULTS = ("internal", "unavailable")
#: The fault injected into the current request's model call (``None``: none). Set by the
#: gRPC interceptor for the call's task; read by the model client only when fault
#: injection is on.
INJECTED_FAULT: ContextVar[str | None] = ContextVar("har_injected_fault", default=None)
