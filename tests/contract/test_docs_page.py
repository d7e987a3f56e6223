"""The docs page of the target (a real ``bentoml serve`` or the image) as a person sees it: rendered by headless Chromium
(Debian's ``chromium``; ``.ci/run`` installs it), offline, with this service's description,
versions and endpoint groups, and none of BentoML's placeholder text."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from har import __version__
from har.serving.openapi import TAGS

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium")
PLACEHOLDERS = ("Machine Learning Service created with BentoML", "join-slack", "twitter.com")
SIZE = (1280, 2200)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200, url
        return r.read().decode(errors="replace")


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is not installed (apt-get install chromium; see .ci/run)"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={SIZE[0]},{SIZE[1]}",
        "--hide-scrollbars",
        # run the page's timers (Swagger UI fetches docs.json after load) before capturing
        "--virtual-time-budget=15000",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.fixture(scope="module")
def server(served):
    return served


def test_page_and_its_scripts_are_served_locally_without_placeholder_text(server):
    html = _get(f"{server.url}/")
    local = re.findall(r'(?:src|href)="\./([^"]+)"', html)
    assert any(p.endswith("swagger-ui-bundle.js") for p in local)
    for path in local:  # the page renders from these alone: no CDN
        _get(f"{server.url}/{path}")
    external = re.findall(r'<script[^>]+src="(https?://[^"]+)"', html)
    assert external == []
    served = html + _get(f"{server.url}/docs.json")
    assert not [p for p in PLACEHOLDERS if p in served]


def test_docs_json_of_the_running_service(server, served_tag):
    spec = json.loads(_get(f"{server.url}/docs.json"))
    assert spec["info"]["version"] == __version__
    assert served_tag in spec["info"]["description"]


def test_rendered_page_shows_description_versions_and_groups(server, tmp_path):
    dom = _chromium(tmp_path / "profile-dom", "--dump-dom", f"{server.url}/").stdout
    text = re.sub(r"<[^>]+>", " ", dom)
    # the visible title: BentoML's stylesheet hides info.title, the description's heading shows
    assert re.search(r"<h1[^>]*>\s*HAR: human-activity recognition", dom)
    assert f"har {__version__}" in text
    assert "har-cnn-bilstm:" in text and "200 samples" in text
    for tag in TAGS:
        assert f'id="operations-tag-{tag}"' in dom, tag
    assert "operations-tag-default" not in dom and "Service APIs" not in dom
    assert "/predict_recording" in text and "Classify windows" in text  # a summary per endpoint
    assert "Failed to load API definition" not in text  # the spec loaded
    assert not [p for p in PLACEHOLDERS if p in dom]


def test_screenshot_is_not_blank(server, tmp_path):
    from PIL import Image

    png = tmp_path / "docs-page.png"
    _chromium(tmp_path / "profile-png", f"--screenshot={png}", f"{server.url}/")
    assert png.stat().st_size > 30_000
    with Image.open(png) as img:
        assert img.size == SIZE
        gray = img.convert("L")
        colours = len(img.convert("RGB").getcolors(maxcolors=1 << 20) or [])
        dark = sum(1 for v in gray.getdata() if v < 128)
    assert colours > 50  # text, group headers, method badges: not a blank page
    assert dark > 0.005 * SIZE[0] * SIZE[1]
    print(f"docs page screenshot: {png}")
