"""The runner as a subprocess: signals, crashes, locks, restarts, the watch, a lone clone."""
