"""``python -m load_tests.bench.ab``: two checkouts (or two venvs) served side by side, A vs B.

Each side is a source tree and the Python of a venv that serves it (so A and B may
differ in code, in BentoML version, or both; `--a-env` / `--b-env` set settings of one
side, e.g. two values of `HAR_COALESCE_INFLIGHT` on one tree). Both servers start at once, each from
its own tree with its own venv's ``bentoml serve service:HARService``, its own BentoML
home (the bundled model imported by that tree's ``python -m har ensure-model``), its own
``HAR_PROFILE_DIR`` and free ports. Then ``--rounds`` interleaved rounds (the side that
goes first alternates) measure, on each side in turn: HTTP ``/predict`` (``wrk``, one
window per request) at c=1, gRPC ``Predict`` (``h2load``, repeated-float window) at c=1,
then both at c=64. The idle server uses no measurable CPU. Printed: medians per side and
the per-round B/A throughput ratios, which are what count on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.servers import Server, bentoml_serve

from .cells import grpc_row, http_row
from .common import GRPC_CELL, GRPC_PATH, HTTP_CELL, Row
from .cpu import Groups, server_groups
from .loadgen import ensure_tools, grpc_check, grpc_response_bytes, write_wrk_script
from .workload import example_window, write_bodies

#: (protocol, concurrency) of the cells, in the order each side measures them in a round.
CELLS = ((HTTP_CELL, 1), (GRPC_CELL, 1), (HTTP_CELL, 64), (GRPC_CELL, 64))
#: Inherited variables that would make a server import or configure the wrong thing.
DROPPED_ENV = ("PYTHONPATH", "VIRTUAL_ENV", "BENTOML_HOME")


@dataclass
class Side:
    """One side of the comparison: a source tree and the venv Python that serves it."""

    label: str
    tree: Path
    python: Path
    env: dict[str, str] = field(default_factory=dict)  # settings of this side's server

    def run(self, *args: str, env: dict[str, str]) -> str:
        """Run this venv's Python in the tree; its stdout (raises on failure)."""
        out = subprocess.run(
            [str(self.python), *args], cwd=self.tree, env=env, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"{self.label}: {args} failed:\n{out.stderr[-2000:]}")
        return out.stdout.strip()

    def describe(self) -> str:
        """Tree, commit and BentoML version, for the report."""
        rev = subprocess.run(
            ["git", "-C", str(self.tree), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        version = self.run("-c", "import bentoml; print(bentoml.__version__)", env=base_env())
        extra = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"{self.tree} @ {rev[:70]} — bentoml {version}, {self.python}" + (
            f", {extra}" if extra else ""
        )


def base_env() -> dict[str, str]:
    """This process's environment without variables that would leak into a server."""
    return {
        k: v for k, v in os.environ.items() if k not in DROPPED_ENV and not k.startswith("HAR_")
    }


def start(stack: contextlib.ExitStack, side: Side, tmp: Path) -> Server:
    """Import the bundled model into a home of the side's own, then serve it from its tree."""
    home = tmp / f"home-{side.label}"
    env = {**base_env(), "BENTOML_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    tag = side.run("-m", "har", "ensure-model", env=env).splitlines()[-1].strip()
    print(f"{side.label}: model {tag} in {home}", flush=True)
    log_dir = tmp / f"serve-{side.label}"
    log_dir.mkdir()
    server_env = {
        "HAR_MODEL_TAG": tag,
        "HAR_MONITORING": "1",
        "WHYLOGS_NO_ANALYTICS": "1",
        "HAR_WARMUP": "blocking",  # full speed from the first cell (older trees ignore it)
        **side.env,
    }
    return stack.enter_context(
        bentoml_serve(
            server_env,
            log_dir=log_dir,
            timeout=600,
            home=home,
            profile_dir=tmp / f"profiles-{side.label}",
            tree=side.tree,
            bentoml=side.python.parent / "bentoml",
        )
    )


def uptime() -> str:
    """``uptime``'s line (the load averages of the shared machine)."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def med(values: Sequence[float | None]) -> float:
    """Median of the known values (nan if none)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else float("nan")


def summary(samples: dict[tuple[str, int, str], list[Row]], rounds: int) -> list[str]:
    """Markdown: medians per side and cell, then every round's B/A throughput ratio."""
    lines = [
        "| cell | A win/s | B win/s | B/A (median of rounds) | A p50 ms | B p50 ms "
        "| A p99 ms | B p99 ms | A errors | B errors | A / B mean batch | others' CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios: dict[str, list[float]] = {}
    for proto, c in CELLS:
        a, b = samples[(proto, c, "A")], samples[(proto, c, "B")]
        name = f"{proto} c={c}"
        ratios[name] = [
            y.throughput / x.throughput if x.throughput else float("nan")
            for x, y in zip(a, b, strict=True)
        ]

        def both(attr: str, fmt: str, a: list[Row] = a, b: list[Row] = b) -> list[str]:
            return [format(med([getattr(r, attr) for r in side]), fmt) for side in (a, b)]

        cells = [*both("throughput", ",.0f"), f"**{med(ratios[name]):.2f}**"]
        cells += both("p50_ms", ".1f") + both("p99_ms", ".1f")
        cells += [str(sum(r.errors or 0 for r in side)) for side in (a, b)]
        cells += [" / ".join(both("mean_batch", ".1f"))]
        cells += [f"{med([r.cpu.get('others') for r in a + b]):.0f}"]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    head = f"| round: B/A win/s (others' CPU % A/B) | {' | '.join(ratios)} |"
    lines += ["", head, "|---:|" + "---:|" * len(ratios)]
    for i in range(rounds):
        cells = []
        for (proto, c), r in zip(CELLS, ratios.values(), strict=True):
            a, b = (samples[(proto, c, k)][i].cpu.get("others", 0.0) for k in "AB")
            cells.append(f"{r[i]:.2f} ({a:.0f}/{b:.0f})")
        lines.append(f"| {i + 1} | {' | '.join(cells)} |")
    return lines


@dataclass
class Load:
    """What every cell sends: the wrk script, the framed gRPC body, h2load's log, timings."""

    lua: Path
    grpc_body: Path
    log: Path
    duration: int
    warmup: int
    grpc_connections: int = 1

    def measure(
        self, server: Server, groups: Groups, cell: tuple[str, int], tag: str, resp_bytes: int
    ) -> Row:
        """One cell on one server (``resp_bytes``: one OK gRPC answer of that server)."""
        proto, c = cell
        name, sec, warm = f"{proto} [{tag}]", self.duration, self.warmup
        if proto == HTTP_CELL:
            return http_row(name, server, groups, self.lua, c, sec, warm)
        return grpc_row(
            name,
            server,
            groups,
            self.grpc_body,
            c,
            sec,
            warm,
            resp_bytes,
            self.log,
            connections=self.grpc_connections,
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m load_tests.bench.ab", description=__doc__)
    for s in ("a", "b"):
        p.add_argument(f"--{s}-tree", type=Path, required=True, help=f"source tree of {s.upper()}")
        p.add_argument(f"--{s}-python", type=Path, required=True, help=f"venv Python of {s}")
        p.add_argument(
            f"--{s}-env",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=f"a setting of {s.upper()}'s server (repeatable), e.g. HAR_COALESCE_INFLIGHT=2",
        )
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    p.add_argument("--duration", type=int, default=15, help="seconds measured per cell")
    p.add_argument("--warmup", type=int, default=3, help="warm-up seconds before each cell")
    p.add_argument(
        "--grpc-connections",
        type=int,
        default=1,
        help="HTTP/2 connections the gRPC streams are spread over (default 1; with several "
        "API workers, one connection lands on one worker)",
    )
    p.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start both servers, run the interleaved rounds, print (and write) the report."""
    opts = parse_args(argv)
    ensure_tools()
    clean = base_env()  # what the servers inherit (tests/helpers/servers.py uses os.environ)
    os.environ.clear()
    os.environ.update(clean)
    sides = {
        s.upper(): Side(
            s.upper(),
            getattr(opts, f"{s}_tree").resolve(),
            getattr(opts, f"{s}_python"),
            dict(kv.split("=", 1) for kv in getattr(opts, f"{s}_env")),
        )
        for s in ("a", "b")
    }
    started = dt.datetime.now(dt.UTC)
    head = [f"# A/B, {started:%Y-%m-%d %H:%M} UTC", ""]
    head += [f"- {k}: {s.describe()}" for k, s in sides.items()]
    samples: dict[tuple[str, int, str], list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="har-ab-") as t, contextlib.ExitStack() as stack:
        tmp = Path(t)
        json_body, grpc_body = write_bodies(tmp, example_window())
        lua = write_wrk_script(tmp / "post.lua", json_body)
        load = Load(
            lua, grpc_body, tmp / "h2load.log", opts.duration, opts.warmup, opts.grpc_connections
        )
        servers = {k: start(stack, s, tmp) for k, s in sides.items()}
        groups = {k: server_groups(s.pid) for k, s in servers.items()}
        resp: dict[str, int] = {}
        for k, s in servers.items():
            ok, total, codes = grpc_check(s.grpc_target, grpc_body, 1)
            if ok != total:
                raise RuntimeError(f"{k}: a grpc client's Predict failed: {codes}")
            resp[k] = grpc_response_bytes(f"http://{s.grpc_target}{GRPC_PATH}", grpc_body)
        head += [f"- load before the rounds: `{uptime()}`"]
        for i in range(opts.rounds):
            for k in ("A", "B") if i % 2 == 0 else ("B", "A"):
                for cell in CELLS:
                    tag = f"{k} round {i + 1}"
                    row = load.measure(servers[k], groups[k], cell, tag, resp[k])
                    samples.setdefault((*cell, k), []).append(row)
            print(f"round {i + 1} done; {uptime()}", flush=True)
    head += [f"- load after the rounds: `{uptime()}`"]
    cmd = shlex.join([sys.executable, "-m", "load_tests.bench.ab", *(argv or sys.argv[1:])])
    head += [
        f"- command: `{cmd}`",
        f"- {opts.rounds} interleaved rounds, {opts.duration} s per cell after {opts.warmup} s"
        " warm-up; monitoring on; one window per request; gRPC streams over"
        f" {opts.grpc_connections} connection(s); 'others' = CPU of everything else"
        " on the machine while measured (% of one core)",
        "",
    ]
    text = "\n".join(head + summary(samples, opts.rounds)) + "\n"
    print("\n" + text)
    if opts.out is not None:
        opts.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
