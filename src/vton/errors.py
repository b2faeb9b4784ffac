"""One error tree for vton; the API maps it to HTTP statuses in one place.

VtonError
├── InvalidInput          bad argument, image, tensor or id           (4xx at the API)
│   ├── NoPersonFound     a person photo in which nobody is detected     (422)
│   └── ImageTooLarge     an image over the pixel cap or decode budget    (413)
├── CheckpointError       a model folder that cannot be loaded strictly
├── NotRegistered         a person/garment/text artifact that does not exist   (404)
├── CorruptArtifact       stored bytes that do not decode                (500, key named)
├── StoreUnavailable      the store cannot be reached                (503 + Retry-After)
└── Busy                  the decode budget is taken by other uploads (429 + Retry-After)
"""


class VtonError(Exception):
    """Base of every error vton raises on purpose."""


class InvalidInput(VtonError, ValueError):
    """An argument, file or id that cannot be used; the message names it."""


class NoPersonFound(InvalidInput):
    """Person preprocessing found nobody in the photo."""


class ImageTooLarge(InvalidInput):
    """An uploaded image with more pixels than the server decodes."""


class CheckpointError(VtonError):
    """A model folder that is missing a component or does not load strictly."""


class NotRegistered(VtonError, LookupError):
    """An artifact that is not in the store; the message names what is missing."""


class CorruptArtifact(VtonError):
    """Stored bytes that do not decode; the message names the key."""


class StoreUnavailable(VtonError):
    """The store cannot be reached; a client may try again after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Busy(VtonError):
    """The server has no room for the request now; a client may try again after
    `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
