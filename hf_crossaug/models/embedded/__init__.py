"""Converters for the offline default models shipped inside PyPI packages."""
