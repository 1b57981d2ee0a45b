"""Build the optional compiled OTLP trace decoder; everything else is declared in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and ``loratrace.collector.decode`` falls back
to its pure-Python path (tests/collector/test_fastdecode.py fails loudly if the extension is missing where it
should have been built).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "loratrace.collector._fastdecode",
            sources=["loratrace/collector/_fastdecode.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
