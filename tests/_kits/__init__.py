"""Tests of the domain-free helpers in runner/_kits."""
