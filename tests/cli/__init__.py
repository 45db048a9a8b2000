"""Tests of runner/cli: each command in-process."""
