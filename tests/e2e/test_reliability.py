"""The reliability harness's short form (``load_tests/reliability``) against a real server.

Every client-input case and a short schemathesis fuzz; ``make reliability`` runs the
full form with the kill cases.
"""

from __future__ import annotations

import pytest

from load_tests.reliability import grpc_cases, http_cases
from load_tests.reliability.fuzz import fuzz
from load_tests.reliability.servers import target_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HTTP = [pytest.param(c, id=c.__name__) for c in http_cases.CASES]
GRPC = [pytest.param(c, id=f"grpc_{c.__name__}") for c in grpc_cases.CASES]


@pytest.fixture(scope="module")
def target(bundled_tag, tmp_path_factory):
    with target_server(tmp_path_factory.mktemp("reliability"), hold_s=31.0) as t:
        yield t


@pytest.mark.parametrize("case", HTTP + GRPC)
def test_case(target, case):
    result = case(target)
    assert not result.failed, result.summary()


def test_short_fuzz(target):
    result = fuzz(target, max_examples=30)
    assert result.requests >= 200, result.summary()
    assert not result.failed, result.summary()[:3000]
