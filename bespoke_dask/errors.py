"""Errors that carry a message meant for the user, not a traceback."""


class InputError(ValueError):
    """The user's input cannot be fitted: a bad SMILES, an unknown QC program, an unsupported element."""
