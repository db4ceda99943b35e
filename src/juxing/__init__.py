"""Juxing (聚星): an open-source content-commerce engine."""

__version__ = "0.1.0"
