"""analyzer: socket teardown forensics for mobile apps."""

__version__ = "0.1.0"
