"""Tests of runner/polling: one bridge at work, change detection, event building."""
