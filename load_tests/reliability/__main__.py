"""``python -m load_tests.reliability``: the reliability harness (``make reliability``).

Against real ``bentoml serve`` processes it starts (``tests/helpers/servers.py``): a
bounded schemathesis fuzz of ``/docs.json``, the malformed-gRPC suite, the client-input
and resource-bound cases, then the kill cases on fresh servers. Prints one table (case,
requests, 5xx, UNKNOWN/INTERNAL, rows lost, recovery seconds, verdict) and exits 1 when
any case failed: any 5xx or UNKNOWN/INTERNAL, or a bound of issue 10 not held.
``--quick``: a few hundred fuzz examples and the input cases, no kill cases.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from . import grpc_cases, http_cases, kills
from .common import Result, table
from .fuzz import fuzz
from .servers import Target, starter, target_server


def input_cases() -> list[Callable[[Target], Result]]:
    """Every client-input case, HTTP then gRPC."""
    return [*http_cases.CASES, *grpc_cases.CASES]


def run_case(case: Callable[[Target], Result], target: Target) -> Result:
    """Run one case; a harness exception becomes a failed result naming it."""
    try:
        return case(target)
    except Exception as exc:
        r = Result(case.__name__)
        r.problems.append(f"harness error {type(exc).__name__}: {exc}"[:300])
        return r


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m load_tests.reliability", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short fuzz, input cases, no kills")
    p.add_argument("--max-examples", type=int, help="fuzz examples per operation and phase")
    p.add_argument("--no-inputs", action="store_true", help="skip the client-input cases")
    p.add_argument("--no-fuzz", action="store_true", help="skip the schemathesis fuzz")
    p.add_argument("--no-kills", action="store_true", help="skip the kill cases")
    p.add_argument("--keep-tmp", action="store_true", help="keep logs, HAR and profiles")
    ns = p.parse_args(argv)
    examples = ns.max_examples or (30 if ns.quick else 300)
    tmp = Path(tempfile.mkdtemp(prefix="har-reliability-"))
    results: list[Result] = []
    try:
        if not (ns.no_inputs and ns.no_fuzz):
            with target_server(tmp, hold_s=31.0 if ns.quick else 130.0) as target:
                for case in [] if ns.no_inputs else input_cases():
                    results.append(run_case(case, target))
                    print(results[-1].summary(), flush=True)
                if not ns.no_fuzz:
                    results.append(fuzz(target, examples, min_requests=0 if ns.quick else 2000))
                    print(results[-1].summary()[:2000], flush=True)
        if not (ns.quick or ns.no_kills):
            start, profiles = starter(tmp, "kills")
            results += kills.kill_workers_then_sigterm(start, profiles)
            start, profiles = starter(tmp, "killpg")
            results.append(kills.kill_process_group(start, profiles))
            start, _ = starter(tmp, "kill1of2", {"HAR_API_WORKERS": "2"})
            results.append(kills.kill_one_of_two_api_workers(start))
            for r in results[-5:]:
                print(r.summary()[:2000], flush=True)
    finally:
        print(f"\n{table(results)}\n", flush=True)
        if ns.keep_tmp:
            print(f"logs and reports: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    failed = [r.case for r in results if r.failed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
