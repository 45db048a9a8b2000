"""Tests of runner/reconcile: the plan, the watcher, the reconciler, git."""
