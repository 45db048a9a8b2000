"""Reconciling: keep one worker per bridge file, matching the files on every change.

The watcher (directory changes, coalesced), the directory reader (every bridge file through
the loader, unchanged files not loaded again), the plan (pure: what to start, restart, stop
or move, and which bridges the shard and selector give this runner), the workers (one
supervised task per bridge), the reconciler that carries the plan out (with the state of
moved and removed bridges, `retention`, and the status files, `statusfiles`), and git (the
revision a checkout is at, and a commit's tree for `status --wait`).
"""
