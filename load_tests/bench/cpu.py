"""Where the CPU went while a cell was measured, and optional py-spy profiles of the workers.

Percentages are of one core: 200 % is both cores of a 2-core machine.
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from .common import API_SERVICE_NAME, MODEL_SERVICE_NAME

Groups = dict[str, list[psutil.Process]]


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's reaped children so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def process_cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    with contextlib.suppress(psutil.Error):
        t = proc.cpu_times()
        return t.user + t.system
    return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, excluding idle and steal)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq


def steal_seconds() -> float:
    """CPU seconds the hypervisor gave this VM's cores to other guests (``steal``)."""
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


class CpuSampler:
    """CPU used by named groups of processes (and by everything else) over an interval."""

    def __init__(self, groups: Groups) -> None:
        self.groups = groups
        self._me = psutil.Process()
        self._t0 = 0.0
        self._c0: dict[str, float] = {}
        self._busy0 = 0.0
        self._me0 = 0.0
        self._steal0 = 0.0

    def _group_cpu(self) -> dict[str, float]:
        return {
            name: sum(process_cpu_seconds(p) for p in procs) for name, procs in self.groups.items()
        }

    def start(self) -> None:
        self._c0 = self._group_cpu()
        self._busy0, self._me0 = machine_busy_seconds(), process_cpu_seconds(self._me)
        self._steal0 = steal_seconds()
        self._t0 = time.monotonic()

    def stop(self, loadgen_cpu_s: float | None = None) -> dict[str, float]:
        """Per-group percent of one core since :meth:`start`; ``loadgen``, ``others`` and
        ``steal`` (time the host ran other VMs on this VM's cores) too.

        Args:
            loadgen_cpu_s: CPU seconds of an external load generator; None means this
                process was the load generator (its own CPU is counted as ``loadgen``).
        """
        wall = max(time.monotonic() - self._t0, 1e-9)
        now = self._group_cpu()
        used = {name: now[name] - self._c0[name] for name in self.groups}
        me = process_cpu_seconds(self._me) - self._me0
        if loadgen_cpu_s is None:
            loadgen_cpu_s, me = me, 0.0
        others = machine_busy_seconds() - self._busy0 - sum(used.values()) - me - loadgen_cpu_s
        out = {name: 100 * s / wall for name, s in used.items()}
        out["loadgen"] = 100 * loadgen_cpu_s / wall
        out["others"] = max(0.0, 100 * others / wall)
        out["steal"] = max(0.0, 100 * (steal_seconds() - self._steal0) / wall)
        return out


def server_groups(root_pid: int) -> Groups:
    """The processes of a ``bentoml serve`` tree, grouped as api / model / supervisor."""
    root = psutil.Process(root_pid)
    groups: Groups = {"api": [], "model": [], "supervisor": [root]}
    for p in root.children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        name = cmd[cmd.index("--service-name") + 1] if "--service-name" in cmd else None
        key = {API_SERVICE_NAME: "api", MODEL_SERVICE_NAME: "model"}.get(name or "", "supervisor")
        groups[key].append(p)
    return groups


@contextlib.contextmanager
def profiled(profile_dir: Path | None, name: str, groups: Groups, seconds: int) -> Iterator[None]:
    """With ``--profile DIR``: sample the API and model workers with py-spy during a cell."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if profile_dir is None or not Path(spy).is_file():
        yield
        return
    profile_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for role in ("api", "model"):
        for p in groups.get(role, []):
            out = profile_dir / f"{name}-{role}-{p.pid}.txt"
            cmd = [spy, "record", "-r", "50", "-d", str(seconds), "-f", "raw", "-o", str(out)]
            cmd += ["--nonblocking", "-p", str(p.pid)]
            procs.append(
                (out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            )
    try:
        yield
    finally:
        for out, proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=seconds + 30)
            if out.is_file():
                print(f"\n  py-spy {out.name}: top self time\n" + summarize_collapsed(out))


def summarize_collapsed(path: Path, top: int = 12) -> str:
    """Top functions by self samples of a collapsed py-spy file (percent of all samples)."""
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n_str = line.rpartition(" ")
        if not n_str.isdigit():
            continue
        n = int(n_str)
        total += n
        leaf = stack.split(";")[-1]
        own[leaf] = own.get(leaf, 0) + n
    lines = [
        f"    {100 * n / total:5.1f}%  {f}" for f, n in sorted(own.items(), key=lambda kv: -kv[1])
    ]
    return "\n".join(lines[:top]) if total else "    (no samples)"
