"""The input errors a job reports as one line (no traceback): bad data, bad model files."""


class DataError(ValueError):
    """Invalid input data; the message names the file, row or column."""


class ModelError(ValueError):
    """A model cannot be built or loaded; the message names the file or config key."""
