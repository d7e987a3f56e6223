"""The guard of the BentoML patches: what a patch is, and how its targets are checked.

Each patch (one module each in this package, registered in
:data:`har.serving.patches.PATCHES`) is a :class:`Patch`: what it changes, why (the upstream
defect), its upstream issue, what is lost without it, when it can go, and a ``check`` that
lists what differs from what it expects. :func:`examine` checks one patch:

- the installed ``bentoml.__version__`` (and ``uvicorn.__version__`` for the patch of
  uvicorn) must be the one the patch was written and tested for (:data:`WRITTEN_FOR`);
- what the patch replaces or calls must still have the expected shape: the attribute
  present, the parameters of its signature, the call sites it relies on, and, where the
  patch copies upstream code, a fingerprint of that code's source (:func:`fingerprint`).

:func:`describe` words the WARNING of a patch that does not match, :func:`refusal` the
message of a refused start. Each patch keeps what it replaced as ``_har_upstream_<name>``
(:data:`UPSTREAM`) on the patched object, so checks and tests see upstream's code after it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("har.bentoml")

#: The BentoML version every patch here was written and checked against.
WRITTEN_FOR = "1.4.40"
#: The uvicorn version the graceful-stop patch (of ``uvicorn.Server``) was written for.
UVICORN_WRITTEN_FOR = "0.54.0"
#: The setting that lets the service start with untested patches.
ALLOW_SETTING = "HAR_ALLOW_UNTESTED_BENTOML"
#: Prefix of the attribute on which a patch keeps what it replaced (``_har_upstream_<name>``).
UPSTREAM = "_har_upstream_"


@dataclass(frozen=True)
class Patch:
    """One patch of BentoML internals (or of a library, for BentoML's sake)."""

    name: str
    what: str  # what it changes
    why: str  # the upstream defect
    upstream: str  # upstream issue / PR, or "none found"
    loses: str  # what the service loses without it
    until: str  # when it can go
    required: bool  # start is refused without it (unless HAR_ALLOW_UNTESTED_BENTOML=1)
    check: Callable[[], list[str]]  # what differs from what the patch expects ([]: none)
    apply: Callable[[], None] | None  # None: relies on internals, replaces nothing
    written_for: Mapping[str, str] = field(default_factory=lambda: {"bentoml": WRITTEN_FOR})


@dataclass(frozen=True)
class Verdict:
    """What the checks found for one patch."""

    patch: Patch
    changed: tuple[str, ...]  # its targets differ: it is not applied
    untested: tuple[str, ...]  # another library version: applied untested

    @property
    def ok(self) -> bool:
        return not self.changed and not self.untested


# -- inspecting what a patch relies on -------------------------------------------------


def original(owner: Any, name: str) -> Any:
    """``owner.name`` as upstream defines it (``None`` if absent): what a patch replaced
    (kept as ``_har_upstream_<name>``), else the attribute itself; a classmethod,
    staticmethod or property as its function."""
    if not hasattr(owner, name):
        return None
    value = vars(owner).get(UPSTREAM + name) if hasattr(owner, "__dict__") else None
    if value is None:
        value = inspect.getattr_static(owner, name)
    if isinstance(value, property):
        return value.fget
    return getattr(value, "__func__", value)


def params(func: Any) -> tuple[str, ...]:
    """The names of ``func``'s parameters (``inspect.signature``)."""
    return tuple(inspect.signature(func).parameters)


def fingerprint(func: Any) -> str:
    """A short hash of ``func``'s source code (``inspect.getsource``)."""
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()[:16]


def _qualname(owner: Any, name: str) -> str:
    return f"{getattr(owner, '__module__', '')}.{getattr(owner, '__qualname__', owner)}.{name}"


def module_source(module: str) -> str:
    """A module's source text, read from its file without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(module)
    with open(spec.origin, encoding="utf-8") as f:
        return f.read()


@dataclass
class Expect:
    """Collects what differs from what a patch expects."""

    found: list[str] = field(default_factory=list)

    def params(self, owner: Any, name: str, expected: tuple[str, ...]) -> Any:
        where = _qualname(owner, name)
        func = original(owner, name)
        if func is None:
            self.found.append(f"{where} is missing")
            return None
        try:
            got = params(func)
        except (TypeError, ValueError):
            self.found.append(f"{where} has no signature")
            return None
        if got != expected:
            self.found.append(
                f"{where}: parameters ({', '.join(expected)}) expected, found ({', '.join(got)})"
            )
        return func

    def source(self, owner: Any, name: str, expected: tuple[str, ...], recorded: str) -> None:
        """Parameters as expected and the source's fingerprint as recorded for WRITTEN_FOR."""
        func = self.params(owner, name, expected)
        if func is None:
            return
        got = fingerprint(func)
        if got != recorded:
            self.found.append(
                f"{_qualname(owner, name)}: source changed (fingerprint {recorded} of "
                f"{WRITTEN_FOR} expected, found {got})"
            )

    def calls(self, where: str, text: str, *needles: str) -> None:
        """``text`` (source code at ``where``) still contains each of ``needles``."""
        for needle in needles:
            if needle not in text:
                self.found.append(f"{where} no longer contains {needle!r}")

    def calls_in(self, owner: Any, name: str, *needles: str) -> None:
        func = original(owner, name)
        if func is None:
            self.found.append(f"{_qualname(owner, name)} is missing")
            return
        self.calls(_qualname(owner, name), inspect.getsource(func), *needles)

    def attribute(self, owner: Any, name: str) -> None:
        if not hasattr(owner, name):
            self.found.append(f"{_qualname(owner, name)} is missing")

    def true(self, condition: bool, what: str) -> None:
        if not condition:
            self.found.append(what)


# -- the guard -------------------------------------------------------------------------


def _installed(library: str) -> str:
    return str(getattr(importlib.import_module(library), "__version__", "unknown"))


def examine(patch: Patch) -> Verdict:
    """Check ``patch`` against the installed libraries (applies nothing)."""
    untested = tuple(
        f"{lib} {want} expected, {got} installed"
        for lib, want in patch.written_for.items()
        if (got := _installed(lib)) != want
    )
    try:
        changed = tuple(patch.check())
    except Exception as exc:  # an import or attribute the check needs is gone
        changed = (f"the check failed: {type(exc).__name__}: {exc}",)
    return Verdict(patch, changed, untested)


def describe(verdict: Verdict) -> str:
    """One line: the patch, what differs, whether it is applied and what is lost."""
    p = verdict.patch
    found = "; ".join(verdict.changed + verdict.untested)
    if verdict.changed:
        done = "NOT applied" if p.apply is not None else "relies on changed internals"
        return f"BentoML patch {p.name!r} {done} ({found}): without it, {p.loses}"
    done = "applied UNTESTED" if p.apply is not None else "relies on internals UNTESTED"
    return (
        f"BentoML patch {p.name!r} {done} ({found}; what it relies on has the expected "
        f"shape): if upstream changed its behaviour, {p.loses}"
    )


def refusal(verdicts: Iterable[Verdict], others: Iterable[str] = ()) -> str:
    """The message of a refused start (nothing is applied): the required patches that do
    not match, and the names of the ``others`` (not required) that do not either."""
    lines = [
        f"- {v.patch.name!r}: {'; '.join(v.changed + v.untested)}. Without it: {v.patch.loses}"
        for v in verdicts
    ]
    if others := list(others):
        lines.append(f"(also not matching, not required: {', '.join(others)})")
    return (
        f"refusing to start: patches of BentoML internals that the service's correctness "
        f"relies on were written and tested for bentoml=={WRITTEN_FOR} (graceful-stop also "
        f"for uvicorn=={UVICORN_WRITTEN_FOR}) and do not match what is installed:\n"
        + "\n".join(lines)
        + f"\nInstall the pinned versions (requirements.lock), or set {ALLOW_SETTING}=1 to "
        "start anyway: each such patch is then applied if what it replaces still has the "
        "expected shape, skipped otherwise, with a WARNING (docs/bentoml-patches.md)."
    )
