"""Error types raised by lccodec. The CLI turns each into one line on stderr."""


class LicError(Exception):
    """Base class of every error lccodec raises on bad input or environment."""


class FormatError(LicError):
    """A .lic byte string is malformed, truncated, corrupt or of an unsupported kind."""


class ImageError(LicError):
    """An input image cannot be read or is refused (too large, empty, unsupported)."""


class ModelError(LicError):
    """An unknown model, missing or mismatched weights, or an invalid quality."""
