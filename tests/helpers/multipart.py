"""A multipart ``POST`` with the standard library only (the contract suite's uploads)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path


def upload(
    url: str, files: dict[str, Path], fields: dict[str, str] | None = None
) -> tuple[int, dict]:
    """A multipart ``POST`` of ``files`` (form name -> path) and text ``fields``."""
    b = uuid.uuid4().hex
    parts = [
        f'--{b}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + path.read_bytes()
        + b"\r\n"
        for name, path in files.items()
    ]
    parts += [
        f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in (fields or {}).items()
    ]
    body = b"".join(parts) + f"--{b}--\r\n".encode()
    req = urllib.request.Request(url, body, {"content-type": f"multipart/form-data; boundary={b}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
