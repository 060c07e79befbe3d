"""The one exception type that reaches the user as a single line."""


class BirdnetEdgeError(Exception):
    """A problem the user can fix: the message names the problem and the fix, on one line."""


class ConfigError(BirdnetEdgeError):
    """The configuration is invalid; the message names the key path."""


class ModelError(BirdnetEdgeError):
    """A model file is missing, corrupt, of the wrong shape, or fails its checksum."""


class AudioError(BirdnetEdgeError):
    """An audio file or device cannot be read."""
