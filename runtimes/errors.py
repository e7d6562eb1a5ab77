"""Device-side input errors (no third-party imports, so the host CLI can catch them cheaply)."""


class ShapeError(ValueError):
    """A dim is unbound or a --shape name is unknown. The message lists the model's dims."""


class JobError(ValueError):
    """The job file is wrong: the message names the field."""
