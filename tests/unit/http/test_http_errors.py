"""The HTTP layer's one error mapping (har/http/errors.py): each raised type's status, body
and headers, in the two serialisations its callers send."""

from __future__ import annotations

import pytest

from har.core.open_inference import ModelNotFoundError
from har.domain.errors import InputError, ModelUnavailableError, RecordingError
from har.http.errors import RequestError, error_response


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (InputError("bad é"), 400, "bad é"),
        (RecordingError("too short"), 400, "too short"),
        (RequestError("send multipart", 415), 415, "send multipart"),
        (RequestError("use GET", 405), 405, "use GET"),
        (ModelNotFoundError("unknown model 'x'"), 404, "unknown model 'x'"),
        (
            ModelUnavailableError("worker restarting"),
            503,
            "the model is unavailable; retry shortly",
        ),
    ],
)
def test_each_error_type_has_one_status_and_body(exc, status, message) -> None:
    import json

    compact, spaced = error_response(exc), error_response(exc, compact=False)
    for r in (compact, spaced):
        assert (r.status_code, json.loads(r.body)) == (status, {"error": message})
        assert r.headers["content-type"] == "application/json"
        assert r.headers.get("retry-after") == ("2" if status == 503 else None)
    assert (
        compact.body
        == json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert spaced.body == json.dumps({"error": message}).encode()
