"""Tests of runner/secrets: resolution, the environment policy, redaction."""
