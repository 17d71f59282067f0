"""Which failures mean "the storage failed" (network, permission, throttling), in one place.

Local filesystems raise OSError; s3fs lets botocore's and aiohttp's own exceptions through, which are
not OSErrors. A storage failure on one file is that file's error; storage that cannot be reached at
all stops a job before it starts.
"""

from __future__ import annotations


class LocatedError(Exception):
    """An error about one file or URI: the message is `<uri>: <reason>`."""

    def __init__(self, uri: str, reason: str):
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason

    def __reduce__(self):
        # Exceptions pickle as cls(*args), here the one-string message; Ray sends a worker's error to
        # the driver pickled, and would report a TypeError instead of the file and the reason.
        return (type(self), (self.uri, self.reason))


class StorageError(LocatedError, OSError):
    """Storage at `uri` failed or cannot be reached."""


def _storage_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [OSError, TimeoutError]
    try:
        import botocore.exceptions

        types += [botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError]
    except ImportError:
        pass
    try:
        import aiohttp

        types.append(aiohttp.ClientError)
    except ImportError:
        pass
    return tuple(types)


STORAGE_ERRORS = _storage_error_types()


def is_storage_error(error: BaseException) -> bool:
    return isinstance(error, STORAGE_ERRORS)


def describe(error: BaseException) -> str:
    """A one-line reason: the exception's own message, with its type where the message alone is vague."""
    message = " ".join(str(error).split()) or "(no message)"
    name = type(error).__name__
    return message if name in ("StorageError", "AudioDecodeError") else f"{name}: {message}"
