"""Error types raised by lccodec. The CLI turns each into one line on stderr."""


class LicError(Exception):
    """Base class of every error lccodec raises on bad input or environment."""


class FormatError(LicError):
    """A .lic byte string is malformed, truncated, corrupt or of an unsupported kind."""


class StreamError(FormatError):
    """A latent or escape stream does not decode exactly under the model's tables: it is damaged,
    or it was made by another model than the one the header names."""


class ImageError(LicError):
    """An input image cannot be read or is refused (too large, empty, unsupported)."""


class ModelError(LicError):
    """An unknown model, missing or mismatched weights, or an invalid quality."""


class LicWarning(UserWarning):
    """Something was changed or dropped but the result is still usable (16-bit input reduced,
    ICC profile dropped, a rate target missed). The CLI prints these as `lic: warning: …`."""
