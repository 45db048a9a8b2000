"""Observability: what the runner tells people and machines about itself.

Logs (text or JSON lines, secrets masked), the Prometheus collector, and the HTTP endpoints
`/metrics`, `/healthz` (the event loop is alive) and `/readyz` (every bridge is Ready).
"""
