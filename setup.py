"""Build hook for the one compiled part: the tracer's C event loop (everything else is in pyproject.toml).

The extension is optional: where no C compiler or Python headers are available the install still succeeds
and `next_jax.execution.tracer` falls back to its pure-Python recorder, which records the same steps.
"""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "next_jax.execution._ctracer",
            ["next_jax/execution/_ctracer.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
