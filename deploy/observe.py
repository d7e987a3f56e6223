"""Run the shipped Prometheus and Alertmanager configs as local processes (no containers).

``make observe`` runs ``python deploy/observe.py`` against a running ``make serve``
(localhost:3000); the end-to-end tests (tests/e2e/test_alerts.py) use the same functions
on free ports. Only the addresses (and, for tests, the intervals) of
``deploy/prometheus/prometheus.yml`` are rewritten; the rule file and
``deploy/alertmanager/alertmanager.yml`` are used as shipped. Needs Debian's
``prometheus`` and ``prometheus-alertmanager`` packages (``prometheus`` and
``prometheus-alertmanager`` on PATH).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERT_RULES = DEPLOY / "prometheus" / "alert-rules.yml"
ALERTMANAGER_YML = DEPLOY / "alertmanager" / "alertmanager.yml"
ALERTMANAGER_BIN = "prometheus-alertmanager"


def prometheus_config(
    har_targets: list[str],
    alertmanager: str,
    *,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
) -> dict[str, Any]:
    """The shipped config with the service targets (``host:port``) and Alertmanager replaced.

    The rule file is named by its absolute path (the shipped config names it relative to
    its own folder, where the written copy does not live).
    """
    cfg = yaml.safe_load(PROMETHEUS_YML.read_text())
    cfg["rule_files"] = [str(ALERT_RULES)]
    cfg["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [alertmanager]}]
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "har"]
    job["static_configs"] = [{"targets": list(har_targets)}]
    if scrape_interval:
        cfg["global"]["scrape_interval"] = scrape_interval
    if evaluation_interval:
        cfg["global"]["evaluation_interval"] = evaluation_interval
    return cfg


def start_prometheus(config: dict[str, Any], workdir: Path, port: int) -> subprocess.Popen:
    """Write ``config`` under ``workdir`` and start Prometheus on 127.0.0.1:``port``."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        "prometheus",
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return _spawn(cmd, workdir / "prometheus.log")


def start_alertmanager(workdir: Path, port: int) -> subprocess.Popen:
    """Start Alertmanager with the shipped config on 127.0.0.1:``port`` (no clustering)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        ALERTMANAGER_BIN,
        f"--config.file={ALERTMANAGER_YML}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return _spawn(cmd, workdir / "alertmanager.log")


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    if shutil.which(cmd[0]) is None:
        raise FileNotFoundError(
            f"{cmd[0]} not found: apt-get install prometheus prometheus-alertmanager"
        )
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until ``url`` (e.g. Prometheus' ``/-/ready``) answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready in {timeout} s")
        time.sleep(0.3)


def stop(*procs: subprocess.Popen) -> None:
    """SIGTERM each process and wait for it (SIGKILL after 20 s)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--har", default="localhost:3000", help="service host:port to scrape")
    ap.add_argument("--dir", type=Path, default=Path("logs/observe"), help="data and logs")
    ap.add_argument("--prometheus-port", type=int, default=9090)
    ap.add_argument("--alertmanager-port", type=int, default=9093)
    args = ap.parse_args(argv)
    am = start_alertmanager(args.dir, args.alertmanager_port)
    cfg = prometheus_config([args.har], f"127.0.0.1:{args.alertmanager_port}")
    prom = start_prometheus(cfg, args.dir, args.prometheus_port)
    try:
        wait_ready(f"http://127.0.0.1:{args.prometheus_port}/-/ready", prom)
        wait_ready(f"http://127.0.0.1:{args.alertmanager_port}/-/ready", am)
        print(
            f"Prometheus   http://127.0.0.1:{args.prometheus_port}  (scraping {args.har})\n"
            f"Alertmanager http://127.0.0.1:{args.alertmanager_port}\n"
            f"data and logs in {args.dir}/ ; Ctrl-C stops both",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while prom.poll() is None and am.poll() is None:
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(prom, am)


if __name__ == "__main__":
    sys.exit(main())
