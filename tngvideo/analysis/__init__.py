"""Metrics, Bjontegaard deltas, reports and plots. Calls only the public API."""
