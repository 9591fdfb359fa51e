"""Entropy coding with constriction: integer tables, indexed symbol coding, escapes."""
from .escape import EscapeReader, EscapeWriter
from .indexed import decode_indexed, encode_indexed
from .tables import CdfTables, build_factorized_tables, build_gaussian_tables

__all__ = [
    "CdfTables",
    "EscapeReader",
    "EscapeWriter",
    "build_factorized_tables",
    "build_gaussian_tables",
    "decode_indexed",
    "encode_indexed",
]
