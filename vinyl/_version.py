"""vinyl's version (read by pyproject and by vinyl._compat's messages)."""

__version__ = "0.2.0"
