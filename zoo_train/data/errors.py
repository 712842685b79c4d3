"""The data error type, kept apart so data readers do not import the task machinery."""


class DataError(Exception):
    """Data that cannot be found or read; the message says where it looked and how to get it."""
