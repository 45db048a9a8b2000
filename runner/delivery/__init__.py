"""Delivery: from the outbox to the sink, at least once.

The deliverer (one per bridge: reads pending events, sends, records what the sink did), the
retry policy (which errors are retried, refused or permanent, and how long to wait), the
CloudEvents encodings, one module per kind of sink, and the leftovers file that keeps
undelivered events a removed bridge leaves behind.
"""
