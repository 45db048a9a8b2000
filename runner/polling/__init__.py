"""Polling: one bridge at work.

The worker (its poll and delivery loops and their supervision), one poll (scan, diff, commit),
change detection (pure: records, fingerprints, the diff) and event building (pure: the
CloudEvents of DESIGN §3, TriggerMesh-equal data).
"""
