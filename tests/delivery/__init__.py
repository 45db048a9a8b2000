"""Tests of runner/delivery against real loopback sinks and the real SQLite outbox."""
