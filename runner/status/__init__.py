"""Status: what each bridge's status file says and how it is written.

Readiness (typed, decided once), the status document, the writer that puts it next to the
bridge file, the live counters shown in it, and the runner's own record (`.bridge-runner/`)
that `status --wait` reads to tell a running runner from a stopped one.
"""
