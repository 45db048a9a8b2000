"""Tests of runner/state against real SQLite files."""
