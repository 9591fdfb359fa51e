"""Entropy coding with constriction: integer tables, indexed symbol coding, escapes."""
from .escape import EscapeReader, EscapeWriter
from .indexed import IndexedDecoder, IndexedEncoder, decode_indexed, encode_indexed
from .tables import CdfTables, GaussianTables, build_factorized_tables, build_gaussian_tables

__all__ = [
    "CdfTables",
    "EscapeReader",
    "EscapeWriter",
    "GaussianTables",
    "IndexedDecoder",
    "IndexedEncoder",
    "build_factorized_tables",
    "build_gaussian_tables",
    "decode_indexed",
    "encode_indexed",
]
