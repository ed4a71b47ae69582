"""Importable test helpers and conformance suites for backends."""
