"""Build the optional compiled OTLP trace decoder; everything else is declared in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and ``loratrace.collector.decode`` falls back
to its pure-Python path (tests/collector/test_fastdecode.py fails loudly if the extension is missing where it
should have been built).

``LORATRACE_CFLAGS`` adds compiler and linker flags (``make test-asan`` builds a sanitized copy with it).
"""

import os
import shlex
from pathlib import Path

from setuptools import Extension, setup

SOURCE_DIR = Path("loratrace/collector/_fastdecode_c")
NANOARROW_DIR = SOURCE_DIR / "vendor" / "nanoarrow"
EXTRA_FLAGS = shlex.split(os.environ.get("LORATRACE_CFLAGS", ""))

setup(
    ext_modules=[
        Extension(
            "loratrace.collector._fastdecode",
            sources=[*sorted(str(p) for p in SOURCE_DIR.glob("*.c")), str(NANOARROW_DIR / "nanoarrow.c")],
            include_dirs=[str(SOURCE_DIR), str(NANOARROW_DIR)],
            depends=[str(p) for p in SOURCE_DIR.glob("*.h")],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", *EXTRA_FLAGS],
            extra_link_args=EXTRA_FLAGS,
            optional=True,
        )
    ]
)
