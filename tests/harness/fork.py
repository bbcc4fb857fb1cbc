"""Run a function in a forked child and get its JSON-able result back in the parent."""
from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable


def in_forked_child(function: Callable[[], object]) -> object:
    """``function()`` in a child made by ``os.fork`` (which leaves with ``os._exit``, as a
    gunicorn worker or an RQ work-horse would); its result, or its traceback as a failure."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            try:
                message = {"result": function()}
            except BaseException:
                message = {"error": traceback.format_exc()}
            os.write(write_end, json.dumps(message).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        raw = pipe.read()
    os.waitpid(pid, 0)
    message = json.loads(raw) if raw else {"error": "the child wrote nothing"}
    if "error" in message:
        raise AssertionError(f"in the forked child:\n{message['error']}")
    return message["result"]
