"""Tests of runner/status: the status document, its writer, the runner record."""
