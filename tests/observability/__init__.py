"""Tests of runner/observability: logs, metrics, the endpoints."""
