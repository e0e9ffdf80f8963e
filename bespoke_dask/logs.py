"""Where Dask's log records go: to the user's logging configuration, not straight to stderr.

On import, distributed gives its loggers a stderr handler of their own at INFO and stops them
propagating, so a script using the Python executor prints Dask's chatter whatever its own logging
says. `follow_user_logging` undoes that: records propagate to the root logger like any library's,
so without a logging configuration only warnings and errors are printed (Python's last resort).
"""

import logging
import sys

DASK_LOGGERS = ("distributed", "distributed.client", "distributed.gc", "bokeh", "tornado", "tornado.application")
WORKER_LOG_LEVEL = logging.WARNING  # worker processes have no user configuration to follow


def follow_user_logging() -> None:
    """Send the records of Dask's loggers through the user's logging configuration."""
    for name in DASK_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if _is_dasks_own(handler):
                logger.removeHandler(handler)
        logger.propagate = True


def _is_dasks_own(handler: logging.Handler) -> bool:
    """The stderr handler `distributed.config.initialize_logging` installs."""
    return type(handler) is logging.StreamHandler and handler.stream is sys.stderr
