"""Foundations: clock, errors, settings. Imports nothing else of jifen."""
