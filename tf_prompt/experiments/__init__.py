"""Sweeps over settings, the HTML error report and plots."""
