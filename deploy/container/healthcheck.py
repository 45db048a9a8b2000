"""Container HEALTHCHECK: exit 0 when the runner's /healthz answers 200, else 1.

Run by Docker inside the image (`python /opt/bridge-runner/healthcheck.py`), where there is no
curl. It reads the same BRIDGE_RUNNER_METRICS_ADDR (HOST:PORT) as `bridge-runner run` and asks
that port on loopback when the runner listens on every interface. Standard library only: it
runs with the image's interpreter and must not depend on the package importing cleanly.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

METRICS_ADDR_ENV = "BRIDGE_RUNNER_METRICS_ADDR"
DEFAULT_METRICS_ADDR = "0.0.0.0:9090"
TIMEOUT_SECONDS = 4.0  # below the Dockerfile's HEALTHCHECK --timeout, so we report, not Docker
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - names, not a bind


def healthz_url(metrics_addr: str) -> str:
    """The /healthz URL to ask for a runner listening on `metrics_addr` (HOST:PORT)."""
    host, sep, port = metrics_addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{METRICS_ADDR_ENV}={metrics_addr!r}: expected HOST:PORT")
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # a bare IPv6 address
    return f"http://{host}:{port}/healthz"


def main() -> int:
    try:
        url = healthz_url(os.environ.get(METRICS_ADDR_ENV) or DEFAULT_METRICS_ADDR)
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:  # a non-2xx answer
        status = exc.code
        exc.close()
    except OSError as exc:  # refused, timed out, unreachable
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
