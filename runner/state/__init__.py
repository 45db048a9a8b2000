"""State: the one SQLite database a runner keeps (`<state-dir>/state.sqlite`).

The outbox (events waiting for their sink, parked, dead-lettered), each bridge's snapshot and
place in the scan, retention, the interface delivery codes against (`ports`), stored JSON
kept as text, and the lock that keeps a second runner off the same state directory.
"""
