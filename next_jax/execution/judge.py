"""The judge: runs trusted test code against proxies of the candidate, in its own confined process.

The judge never holds the candidate's code or objects. A call through a proxy is a request to the dispatcher,
which relays it to the candidate process; the answer is a plain value (exact built-in types) or an opaque handle.
So ``==``, ``math.isclose``, ``set(...) ==``, ``is None``, truthiness or any other check a test makes is evaluated
here on plain data: a candidate's ``__eq__`` never runs, and the expected values never leave this process.
"""

from __future__ import annotations

import ast
import importlib
import math
import operator
import random
import resource
import sys
from typing import Any

from next_jax.execution import plain
from next_jax.execution.channel import Channel, ChannelClosed
from next_jax.execution.prefetch import judge_binds_to_candidate as binds_to_candidate
from next_jax.execution.saferepr import safe_repr

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}


class CandidateRaised(Exception):
    """The candidate raised while answering a call; visible to test code that expects exceptions."""

    def __init__(self, info: dict) -> None:
        super().__init__(f"{info.get('type')}: {info.get('message')}")
        self.info = info


class CandidateGone(BaseException):
    """The candidate process is dead or the run is over; not catchable by ``except Exception`` in tests."""


class Proxy:
    """Forwards operations on candidate objects through the dispatcher."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        # Results of finished tests ride on the next request (or on "done"): one frame less per test, and the
        # dispatcher still holds every finished test's result if the candidate then hangs.
        self.finished: list[dict] = []
        # Test index -> [target, answer] of the one call the dispatcher already made for each of the first
        # `prefetched_count` tests (see prefetch.py); `test` is the index of the test running now.
        self.prefetched: dict[int, list] = {}
        self.prefetched_count = 0
        self.test = 0

    def _request(self, request: dict) -> Any:
        if self.test < self.prefetched_count:
            entry = self.prefetched.pop(self.test, None)
            if entry is None or request.get("op") != "call" or request.get("target") != entry[0]:
                # The tests make a call the plan did not foresee: the dispatcher reports it and gives no verdict.
                self.prefetched, self.prefetched_count = {}, 0
                self.channel.send({"op": "prefetch_mismatch", "results": self.finished})
                self.finished = []
                raise CandidateGone("prefetch mismatch")
            return self._decode(entry[1])
        if self.finished:
            request["results"], self.finished = self.finished, []
        self.channel.send(request)
        return self._decode(self.channel.recv())

    def _decode(self, answer: dict) -> Any:
        if "gone" in answer:
            raise CandidateGone(answer["gone"])
        if "raise" in answer:
            raise CandidateRaised(answer["raise"])
        return plain.decode(answer["value"], self._handle)

    def _handle(self, ident: int, type_name: str) -> plain.Handle:
        return plain.Handle(ident, type_name, self)

    def _encode(self, value: Any) -> Any:
        def to_handle(obj: Any) -> int:
            if type(obj) is plain.Handle:
                return obj.ident
            if type(obj) is CandidateFunction:
                raise TypeError("passing a candidate function as an argument is not supported")
            raise TypeError(f"cannot pass a {type(obj).__name__} to the candidate")

        return plain.encode(value, to_handle)

    def call(self, target: Any, args: tuple, kwargs: dict) -> Any:
        return self._request({"op": "call", "target": target, "args": self._encode(list(args)),
                              "kwargs": self._encode(dict(kwargs))})

    def getattr(self, ident: int, name: str) -> Any:
        return self._request({"op": "getattr", "handle": ident, "name": name})

    def setattr(self, ident: int, name: str, value: Any) -> None:
        self._request({"op": "setattr", "handle": ident, "name": name, "value": self._encode(value)})


class CandidateFunction:
    """A top-level callable of the candidate program, as seen by the tests."""

    def __init__(self, proxy: Proxy, name: str) -> None:
        self._proxy, self.__name__ = proxy, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._proxy.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<candidate function {self.__name__}>"


def _bind_module(namespace: dict, name: str, module: str) -> None:
    try:
        namespace[name] = importlib.import_module(module)
    except ImportError:
        pass


def _failure_from(exc: BaseException) -> dict:
    if isinstance(exc, CandidateRaised):
        return {"ok": False, "kind": "candidate_error", **exc.info}
    return {"ok": False, "kind": "test_error", "type": type(exc).__name__, "message": str(exc)[:2000]}


class Judge:
    """Runs candidates' tests, one request at a time; reports each test's outcome as it completes.

    With ``fail_fast`` in the request, the run ends at the first test that does not pass. The candidate is never
    told: the dispatcher kills it once the judge is done, and sends it nothing that depends on a test's outcome.

    A judge serves several candidates in turn (it only ever holds trusted code and plain values); each run gets a
    fresh namespace and a reseeded ``random``. The dispatcher discards the judge after any abnormal run.
    """

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.proxy = Proxy(channel)

    def run(self) -> None:
        while True:
            try:
                request = self.channel.recv()
            except ChannelClosed:
                return
            cpu = request.get("cpu_seconds")
            if type(cpu) is int and cpu > 0:
                _cpu_budget(cpu)
            seed = int(request.get("seed", 0))
            random.seed(seed)
            if "numpy" in sys.modules:  # otherwise seeded as it loads (roles.seed_random at start-up)
                sys.modules["numpy"].random.seed(seed % 2**32)
            self._run_one(request)

    def _run_one(self, request: dict) -> None:
        prefetched = request.get("prefetched") or []
        self.proxy.prefetched = dict(enumerate(prefetched))
        self.proxy.prefetched_count = len(prefetched)
        self.proxy.test = 0
        namespace = self._namespace(request["names"], request.get("entry_point", ""))
        try:
            setup_error = None
            exec(compile(request.get("setup") or "", "<setup>", "exec"), namespace)
        except CandidateGone:
            return
        except BaseException as e:
            setup_error = _failure_from(e)
        fail_fast = bool(request.get("fail_fast"))
        for index, test in enumerate(request["tests"]):
            self.proxy.test = index
            try:
                result = setup_error or self._run_test(test, namespace)
            except CandidateGone:
                return
            self.proxy.finished.append(result)
            if fail_fast and result.get("ok") is not True:
                break  # the verdict is decided: the remaining tests are not run
        results, self.proxy.finished = self.proxy.finished, []
        self.channel.send({"op": "done", "results": results})

    def _namespace(self, names: dict, entry_point: str) -> dict[str, Any]:
        """Bind the program's names for the tests; builtins and standard modules stay the real ones."""
        namespace: dict[str, Any] = {"__name__": "__main__"}
        for name, entry in names.items():
            if not binds_to_candidate(name, names, entry_point):
                if name in sys.stdlib_module_names and entry[0] == "module":  # the real module, whatever it claims
                    _bind_module(namespace, name, name)
                continue
            if entry[0] == "callable":
                namespace[name] = CandidateFunction(self.proxy, name)
            elif entry[0] == "module":
                # The judge imports the module itself: a program's `import numpy as np` makes `np` usable in tests.
                _bind_module(namespace, name, entry[1])
            else:
                namespace[name] = plain.decode(entry[1], self.proxy._handle)
        return namespace

    def _run_test(self, test: str, namespace: dict) -> dict:
        try:
            tree = ast.parse(test, "<test>", "exec")
        except SyntaxError as e:
            return {"ok": False, "kind": "test_error", "type": "SyntaxError", "message": str(e)}
        try:
            single = tree.body[0] if len(tree.body) == 1 else None
            if (isinstance(single, ast.Assert) and isinstance(single.test, ast.Compare)
                    and len(single.test.ops) == 1):
                return self._run_comparison(single.test, namespace)
            exec(compile(tree, "<test>", "exec"), namespace)
            return {"ok": True}
        except AssertionError as e:
            return {"ok": False, "kind": "assert", "message": str(e)[:2000]}
        except CandidateGone:
            raise
        except BaseException as e:
            return _failure_from(e)

    def _run_comparison(self, compare: ast.Compare, namespace: dict) -> dict:
        """``assert GOT <op> EXPECTED``: evaluate both sides separately to report expected vs got."""
        got = eval(compile(ast.Expression(compare.left), "<test>", "eval"), namespace)
        expected = eval(compile(ast.Expression(compare.comparators[0]), "<test>", "eval"), namespace)
        if _COMPARE[type(compare.ops[0])](got, expected):
            return {"ok": True}
        return {"ok": False, "kind": "assert", "op": type(compare.ops[0]).__name__,
                "expected": _show(expected), "got": _show(got)}


def _cpu_budget(seconds: int) -> None:
    """Allow this run ``seconds`` of CPU beyond what the judge used so far (soft limit; SIGXCPU ends the judge).

    The judge serves many candidates in turn and CPU time accumulates over its life, so a fixed limit would
    end a long-lived judge in the middle of an innocent candidate's run; the hard limit bounds its whole life."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = seconds + math.ceil(used.ru_utime + used.ru_stime)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _show(value: Any) -> str:
    return repr(value) if type(value) is plain.Handle else safe_repr(value)
