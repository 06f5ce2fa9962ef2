"""Kernel export: ``symad.export(fn, example_inputs, out_dir, name=...)`` writes a C library
(.ll/.o/.so), its header, a self-checking C test harness and a JSON manifest. See docs/export.md.
"""
from __future__ import annotations

from .export import ExportError, ExportResult, export

__all__ = ["ExportError", "ExportResult", "export"]
