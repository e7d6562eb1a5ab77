"""Device-side input errors (no third-party imports, so the host CLI can catch them cheaply)."""


class ShapeError(ValueError):
    """A dim is unbound or a --shape name is unknown. The message lists the model's dims."""


class JobError(ValueError):
    """The job file is wrong: the message names the field."""


class ModelError(ValueError):
    """ONNX Runtime cannot load or run the model (an unknown op, a malformed graph)."""


class ProviderError(RuntimeError):
    """A requested execution provider is not what the session got (exit 3 unless fallback is allowed)."""
