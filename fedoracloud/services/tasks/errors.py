"""What a task's failure means: retry it later, or fail it with a message a user reads."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from .. import ServiceError

#: how long a task's message may be
MESSAGE_MAX = 4000


class RetryableError(Exception):
    """Passing trouble (a host or a storage server unreachable): try again later."""


class TaskCanceled(Exception):
    """Someone canceled the running task; raised by ``progress()``/``check_canceled()``."""


def is_retryable(exc: BaseException) -> bool:
    """Whether an error is connection-class (retry with backoff) rather than a logic error
    (fail at once): RetryableError, OSError, the database's OperationalError, a libvirt
    error about the connection, or any exception with ``retryable = True``; the
    ``__cause__`` chain is looked at too."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        flag = getattr(current, "retryable", None)
        if isinstance(flag, bool):
            return flag
        if isinstance(current, RetryableError | OSError | OperationalError):
            return True  # OperationalError: the database is down, restarting or locked
        if _libvirt_connection_error(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _libvirt_connection_error(exc: BaseException) -> bool:
    try:
        import libvirt
    except ImportError:  # pragma: no cover - libvirt-python is a dependency
        return False
    if not isinstance(exc, libvirt.libvirtError):
        return False
    codes = {
        getattr(libvirt, name, -1)
        for name in (
            "VIR_ERR_NO_CONNECT",
            "VIR_ERR_SYSTEM_ERROR",
            "VIR_ERR_RPC",
            "VIR_ERR_OPERATION_TIMEOUT",
            "VIR_ERR_AGENT_UNRESPONSIVE",
            "VIR_ERR_OPERATION_ABORTED",
        )
    }
    return exc.get_error_code() in codes


def error_message(exc: BaseException) -> str:
    """What a user reads on a failed task: a service's refusal as it is, anything else as
    its text (or its type when it has none)."""
    text_ = exc.message if isinstance(exc, ServiceError) else str(exc).strip()
    return (text_ or type(exc).__name__)[:MESSAGE_MAX]
