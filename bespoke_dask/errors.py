"""Errors that carry a message meant for the user, and the one way we turn any error into one line.

`InputError` is the documented exception of the Python API for input that cannot be fitted;
the command line prints it as one line and exits with code 2. Anything else escaping is a bug.
"""

import re

MAX_LINE = 300  # characters of a one-line reason


class InputError(ValueError):
    """The user's input cannot be fitted: a bad SMILES, an unknown QC program, an unsupported element."""


class UnknownWorkflow(InputError, KeyError):
    """No workflow has this id (a KeyError too, as BespokeFit's executor raised)."""

    __str__ = Exception.__str__  # KeyError's would quote the message


class ExecutorNotFound(RuntimeError):
    """No running executor could be reached."""


class DirectoryBusy(RuntimeError):
    """Another running executor holds the directory."""


class StageTimeout(TimeoutError):
    """A stage ran past its time limit and was stopped."""


# The last "module.ExceptionName: message" line of a (possibly nested) traceback.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*): *(\S.*)$", re.MULTILINE)


def one_line(error: BaseException | str, limit: int | None = MAX_LINE) -> str:
    """One line for a user: `Type: first line of the message`, at most `limit` characters.

    For an exception group (a TaskGroup's failure) the first exception is described. For text
    (e.g. a QC program's error report holding a traceback) the innermost exception line is
    kept, else the last non-empty line.
    """
    if isinstance(error, BaseException):
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        name = type(error).__name__
        text = f"{name}: {lines[0]}" if lines else name
    else:
        matches = _EXCEPTION_LINE.findall(error or "")
        if matches:
            name, message = matches[-1]
            text = f"{name.rsplit('.', 1)[-1]}: {message.strip()}"
        else:
            lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
            text = lines[-1] if lines else "no error message"
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."
