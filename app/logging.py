"""Structured logs (structlog): JSON lines, each carrying the correlation id and, where relevant, the
activation id and step (bound through contextvars); readable lines instead when a person watches the
terminal (LOG_FORMAT=auto, the default)."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# Loggers that libraries configure for themselves; routed back to the root handler below.
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _drop_color_message(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # uvicorn passes an ANSI-coloured copy of its message as an `extra`; ExtraAdder would keep it.
    event_dict.pop("color_message", None)
    return event_dict


class _NamedWriteLogger(structlog.WriteLogger):
    """A structlog WriteLogger with a name, for add_logger_name (``logger`` in every line)."""

    def __init__(self, name: str) -> None:
        super().__init__(sys.stdout)
        self.name = name


class _NamedWriteLoggerFactory:
    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(str(args[0]) if args else "activation_gateway")


def resolve_format(fmt: str, stream: TextIO) -> str:
    """``auto``: readable lines on a terminal (the interactive default run), JSON lines for anything
    that collects them (a file, a pipe, a container's log driver). An explicit format always wins."""
    if fmt != "auto":
        return fmt
    try:
        return "console" if stream.isatty() else "json"
    except ValueError:  # a closed stream: nobody is watching
        return "json"


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    fmt = resolve_format(fmt, sys.stdout)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Our own lines are rendered by structlog and written straight to stdout: a quarter of the CPU
    # of going through the standard library's logging machinery (about 18 µs a line against 63 µs),
    # which matters at ~20 lines per activation. Libraries' lines still come through the root
    # handler below, rendered by the same processors.
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_NamedWriteLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # format_exc_info turns exc_info into a traceback string: without it JSON lines say only "exc_info": true.
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_color_message],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Python warnings would otherwise go to stderr as plain text, outside the JSON stream.
    logging.captureWarnings(True)
    # Anything that configured its own handlers (uvicorn's default dictConfig does, with
    # propagate=False) would bypass the JSON renderer: send it all through the root handler.
    for name in _OWN_HANDLERS:
        own = logging.getLogger(name)
        own.handlers.clear()
        own.propagate = True
        own.setLevel(logging.NOTSET)
    # Access logs duplicate our own request logging; httpx would log every URL at INFO.
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
