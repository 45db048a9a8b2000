"""Reconciling: keep one worker per bridge file, matching the files on every change.

The watcher (directory changes, coalesced), the plan (pure: what to start, restart, stop or
move), the reconciler that carries the plan out, and git (the revision a checkout is at, and
a commit's tree for `status --wait`).
"""
