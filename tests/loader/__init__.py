"""Tests of runner/loader: files to bridges or located problems."""
