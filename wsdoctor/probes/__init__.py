"""Probes: thin I/O that records what happened (timings, bytes, headers, close codes) and judges nothing."""
