"""The optional C extension (vinyl.translate._rowbuild); everything else is in pyproject.toml.

The extension is optional: where it cannot be compiled (no C compiler, no
Python headers) the install goes on without it, with a warning, and vinyl
runs its pure-Python builder (see docs/performance.md).
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "vinyl/translate/_rowbuild.c"
# The module carries its source's hash: vinyl refuses a build older than the
# source beside it (an editable checkout edited since it was built).
SOURCE_HASH = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "vinyl.translate._rowbuild",
            [SOURCE],
            define_macros=[("ROWBUILD_SOURCE_HASH", f'"{SOURCE_HASH}"')],
            optional=True,
        )
    ]
)
