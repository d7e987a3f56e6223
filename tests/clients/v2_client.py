"""Drive a running server with a real Open Inference Protocol client; JSON in, JSON out.

Runs under ``.venv-clients/bin/python`` (``make clients``: tritonclient and kserve as a user
installs them, tests/clients/requirements.txt), never under the service's environment.
Used by ``tests/contract/test_v2_protocol.py`` and ``load_tests``; by hand::

    echo '[{"op": "server_live"}]' | .venv-clients/bin/python tests/clients/v2_client.py \\
        triton-http --http 127.0.0.1:3000 --grpc 127.0.0.1:50051

The first argument is the client: ``triton-http``, ``triton-grpc``, ``kserve-rest`` or
``kserve-grpc`` (tritonclient's gRPC stubs and kserve's register the same protobuf names,
so one process holds one of the two libraries). Standard input is a JSON list of calls::

    {"op": "server_live" | "server_ready" | "server_metadata"}
    {"op": "model_ready" | "model_metadata", "model": NAME, "version": ""}
    {"op": "infer", "model": NAME, "version": "", "npy": PATH, "input": "windows",
     "datatype": "FP32", "binary": true, "outputs": ["probabilities", ...] | null,
     "binary_outputs": true, "parameters": {"acc_unit": "g"}}

Standard output is a JSON list, one answer per call: ``{"ok": true, "value": ...}`` (infer:
``{"outputs": {name: {"datatype", "shape", "data"}}}``) or ``{"ok": false, "status": ...,
"message": ...}`` with the client library's error status (the HTTP code, or the gRPC code
name such as ``StatusCode.INVALID_ARGUMENT``). ``--token`` sends ``Authorization: Bearer``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import numpy as np

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}


def _array(call: dict[str, Any]) -> np.ndarray:
    arr = np.load(call["npy"])
    return arr.astype(DTYPES[call.get("datatype", "FP32")])


def _outputs_json(named: dict[str, np.ndarray], datatypes: dict[str, str]) -> dict[str, Any]:
    return {
        "outputs": {
            n: {"datatype": datatypes[n], "shape": list(a.shape), "data": a.ravel().tolist()}
            for n, a in named.items()
        }
    }


class Triton:
    """tritonclient.http or tritonclient.grpc (same interface)."""

    def __init__(self, kind: str, http: str, grpc_target: str, token: str | None) -> None:
        if kind == "triton-http":
            import tritonclient.http as client

            self.client = client.InferenceServerClient(url=http)
        else:
            import tritonclient.grpc as client  # type: ignore[no-redef]

            self.client = client.InferenceServerClient(url=grpc_target)
        self.lib = client
        self.grpc = kind == "triton-grpc"
        self.headers = {"authorization": f"Bearer {token}"} if token else None
        from tritonclient.utils import InferenceServerException

        self.error = InferenceServerException

    def run(self, call: dict[str, Any]) -> Any:
        c, h, op = self.client, self.headers, call["op"]
        if op == "server_live":
            return c.is_server_live(headers=h)
        if op == "server_ready":
            return c.is_server_ready(headers=h)
        if op == "server_metadata":
            if self.grpc:
                return c.get_server_metadata(headers=h, as_json=True)
            return c.get_server_metadata(headers=h)
        if op == "model_ready":
            return c.is_model_ready(call["model"], call.get("version", ""), headers=h)
        if op == "model_metadata":
            if self.grpc:
                return c.get_model_metadata(
                    call["model"], call.get("version", ""), headers=h, as_json=True
                )
            return c.get_model_metadata(call["model"], call.get("version", ""), headers=h)
        if op == "infer":
            arr = _array(call)
            inp = self.lib.InferInput(
                call.get("input", "windows"), list(arr.shape), call.get("datatype", "FP32")
            )
            if self.grpc:
                inp.set_data_from_numpy(arr)
            else:
                inp.set_data_from_numpy(arr, binary_data=call.get("binary", True))
            names = call.get("outputs")
            outputs = None
            if names is not None:
                if self.grpc:
                    outputs = [self.lib.InferRequestedOutput(n) for n in names]
                else:
                    binary = call.get("binary_outputs", True)
                    outputs = [self.lib.InferRequestedOutput(n, binary_data=binary) for n in names]
            result = c.infer(
                call["model"],
                [inp],
                model_version=call.get("version", ""),
                outputs=outputs,
                headers=h,
                parameters=call.get("parameters") or None,
            )
            response = result.get_response(as_json=True) if self.grpc else result.get_response()
            datatypes = {o["name"]: o["datatype"] for o in response["outputs"]}
            return _outputs_json({n: result.as_numpy(n) for n in datatypes}, datatypes)
        raise ValueError(f"unknown op {op!r}")

    def failure(self, exc: Exception) -> dict[str, Any] | None:
        if isinstance(exc, self.error):
            return {"ok": False, "status": str(exc.status()), "message": exc.message()}
        return None


class KServe:
    """kserve's InferenceRESTClient (protocol v2) or InferenceGRPCClient."""

    def __init__(self, kind: str, http: str, grpc_target: str, token: str | None) -> None:
        import kserve

        self.kserve = kserve
        self.grpc = kind == "kserve-grpc"
        self.base = f"http://{http}"
        if self.grpc:
            self.client: Any = kserve.InferenceGRPCClient(url=grpc_target)
            self.headers: Any = [("authorization", f"Bearer {token}")] if token else None
        else:
            self.client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2"))
            self.headers = {"authorization": f"Bearer {token}"} if token else None

    async def run(self, call: dict[str, Any]) -> Any:
        c, h, op = self.client, self.headers, call["op"]
        args = () if self.grpc else (self.base,)
        if op == "server_live":
            return await c.is_server_live(*args, headers=h)
        if op == "server_ready":
            return await c.is_server_ready(*args, headers=h)
        if op == "model_ready":
            return await c.is_model_ready(*args, call["model"], headers=h)
        if op == "infer":
            arr = _array(call)
            inp = self.kserve.InferInput(
                call.get("input", "windows"), list(arr.shape), call.get("datatype", "FP32")
            )
            inp.set_data_from_numpy(arr, binary_data=call.get("binary", True))
            request = self.kserve.InferRequest(
                model_name=call["model"],
                infer_inputs=[inp],
                parameters=call.get("parameters") or None,
                model_version=call.get("version") or None,
            )
            if self.grpc:
                response = await c.infer(request, headers=h)
            else:
                response = await c.infer(self.base, request, model_name=call["model"], headers=h)
            named = {o.name: o.as_numpy() for o in response.outputs}
            return _outputs_json(named, {o.name: o.datatype for o in response.outputs})
        raise ValueError(f"unknown op {op!r} for kserve")

    def failure(self, exc: Exception) -> dict[str, Any] | None:
        import grpc
        import httpx

        if isinstance(exc, httpx.HTTPStatusError):
            try:
                message = exc.response.json().get("error", exc.response.text)
            except ValueError:
                message = exc.response.text
            return {"ok": False, "status": str(exc.response.status_code), "message": message}
        if isinstance(exc, grpc.RpcError):
            return {"ok": False, "status": str(exc.code()), "message": exc.details()}
        return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "client", choices=["triton-http", "triton-grpc", "kserve-rest", "kserve-grpc"]
    )
    parser.add_argument("--http", required=True, help="HOST:PORT of the HTTP API")
    parser.add_argument("--grpc", required=True, help="HOST:PORT of the gRPC API")
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # kserve parses the command line at import (its model server's flags)
    calls = json.load(sys.stdin)
    driver: Any = (Triton if args.client.startswith("triton") else KServe)(
        args.client, args.http, args.grpc, args.token
    )
    answers = []
    for call in calls:
        try:
            value = driver.run(call)
            if asyncio.iscoroutine(value):
                value = await value
            answers.append({"ok": True, "value": value})
        except Exception as exc:  # the library's error, reported; anything else too, named
            failure = driver.failure(exc)
            answers.append(
                failure or {"ok": False, "status": type(exc).__name__, "message": str(exc)}
            )
    json.dump(answers, sys.stdout, default=str)


if __name__ == "__main__":
    asyncio.run(main())
