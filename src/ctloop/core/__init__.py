"""Shared foundations: settings, errors, hashing, plugin loading."""
