"""What a confined child does once it is running: serve a candidate program, or judge tests.

``candidate``: holds the untrusted program. Answers ``load``, ``call``, ``getattr``, ``setattr``, ``eval`` and
``trace`` requests with plain values only (non-plain objects stay here, behind handle ids).
``judge``: holds trusted test code and never the program. Names the program defines are bound to proxies whose
calls travel through the dispatcher to the candidate and come back as plain values; every comparison the tests
make therefore runs here, on exact built-in types.
"""

from __future__ import annotations

import builtins
import math
import random
import resource
import sys
import types
from typing import Any

from next_jax.execution import plain, tracer
from next_jax.execution.channel import Channel
from next_jax.execution.judge import Judge

CANDIDATE_FILE = "<candidate>"


def serve(role: str, fd: int) -> None:
    channel = Channel(fd)
    if role == "candidate":
        CandidateServer(channel).run()
    elif role == "judge":
        Judge(channel).run()
    else:
        raise ValueError(f"unknown role {role!r}")


class _SeedNumpyOnImport:
    """Meta-path finder: numpy is not pre-imported (it makes every fork slower), so seed it as it loads."""

    def __init__(self, seed: int) -> None:
        self.seed = seed % 2**32

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "numpy":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                load = spec.loader.exec_module

                def exec_module(module: Any, load: Any = load) -> None:
                    load(module)
                    module.random.seed(self.seed)

                spec.loader.exec_module = exec_module
                return spec
        return None


def seed_random(seed: int) -> None:
    """Deterministic ``random`` (and numpy's global generator, whenever numpy gets imported)."""
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed % 2**32)
    else:
        sys.meta_path.insert(0, _SeedNumpyOnImport(seed))


def error_info(exc: BaseException) -> dict:
    """Type, message and candidate line of an exception, as plain strings (bounded)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == CANDIDATE_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename == CANDIDATE_FILE:
        line = exc.lineno
    try:
        message = str(exc)[:2000]
    except BaseException:  # a hostile __str__
        message = "<unprintable message>"
    name = type(exc).__name__
    return {"type": name if isinstance(name, str) else "Exception", "message": message, "line": line}


class CandidateServer:
    """The untrusted side: executes the program and answers calls into it."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.objects: dict[int, Any] = {}

    def run(self) -> None:
        while True:
            request = self.channel.recv()
            op = request.get("op")
            try:
                answer = getattr(self, f"op_{op}")(request)
            except BaseException as e:  # SystemExit, KeyboardInterrupt, MemoryError ... all become answers
                answer = {"raise": error_info(e)}
            self._answer(answer)

    def _answer(self, answer: dict) -> None:
        try:
            self.channel.send(answer)
        except BaseException as e:  # e.g. MemoryError while serialising a huge value
            self.channel.send({"raise": error_info(e)})

    def _to_handle(self, obj: Any) -> int:
        ident = len(self.objects) + 1
        self.objects[ident] = obj
        return ident

    def _resolve(self, ident: int, _type_name: str) -> Any:
        return self.objects[ident]

    def _value(self, value: Any) -> dict:
        return {"value": plain.encode(value, self._to_handle)}

    def op_load(self, request: dict) -> dict:
        code = request["code"]
        cpu = request.get("cpu_seconds")
        if type(cpu) is int and cpu > 0:  # this candidate's own limit, below the one the child started with
            used = resource.getrusage(resource.RUSAGE_SELF)
            limit = cpu + math.ceil(used.ru_utime + used.ru_stime)
            hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
            limit = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
            resource.setrlimit(resource.RLIMIT_CPU, (limit, limit))
        try:
            compiled = compile(code, CANDIDATE_FILE, "exec")
        except (SyntaxError, ValueError) as e:  # ValueError: null bytes
            return {"error": {"kind": "syntax", **error_info(e)}}
        try:
            exec(compiled, self.namespace)
        except BaseException as e:
            return {"error": {"kind": "runtime", **error_info(e)}}
        names = {}
        for name, value in list(self.namespace.items()):
            if name.startswith("__"):
                continue
            if type(value) is types.ModuleType:
                names[name] = ["module", value.__name__]
            elif callable(value):
                names[name] = ["callable"]
            else:
                names[name] = ["value", plain.encode(value, self._to_handle)]
        return {"names": names}

    def op_call(self, request: dict) -> dict:
        target = request["target"]
        func = self.objects[target["handle"]] if isinstance(target, dict) else self.namespace[target]
        args = plain.decode(request["args"], self._resolve)
        kwargs = plain.decode(request["kwargs"], self._resolve)
        return self._value(func(*args, **kwargs))

    def op_getattr(self, request: dict) -> dict:
        return self._value(getattr(self.objects[request["handle"]], request["name"]))

    def op_setattr(self, request: dict) -> dict:
        value = plain.decode(request["value"], self._resolve)
        setattr(self.objects[request["handle"]], request["name"], value)
        return {"value": None}

    def op_eval(self, request: dict) -> dict:
        """Evaluate trusted call expressions against the loaded program (reference outputs)."""
        results = []
        for expr in request["calls"]:
            try:
                results.append({"value": plain.encode(eval(expr, self.namespace))})
            except BaseException as e:
                results.append({"exception": error_info(e)})
        return {"results": results}

    def op_trace(self, request: dict) -> dict:
        trace = tracer.trace_call(request["code"], request["call"], filename=CANDIDATE_FILE,
                                  **request.get("budgets", {}))
        return {"trace": trace.to_json()}


if __name__ == "__main__":  # pragma: no cover
    sys.exit("roles are started by the zygote")
