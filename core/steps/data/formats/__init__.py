"""Importers and exporters, one module per format; `parse_file` detects the format."""

from core.steps.data.formats.base import Issue, Parsed, Record
from core.steps.data.formats.detect import FORMATS, detect_format, parse_file

__all__ = ["FORMATS", "Issue", "Parsed", "Record", "detect_format", "parse_file"]
