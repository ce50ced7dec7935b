"""Builds intake._intake, the C extension, against libintake found by pkg-config (the
installed tree; PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for one installed under a prefix).
The extension records the library's directory as its run path, so no LD_LIBRARY_PATH is
needed. No package index is used: pip install --no-build-isolation ./bindings/python."""
import os
import shlex
import subprocess

from setuptools import Extension, setup


def pkg_config(*arguments):
    try:
        output = subprocess.run(["pkg-config", *arguments, "intake"], check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(
            "intake: pkg-config cannot find libintake (%s): install it first "
            "(cmake --install build), and set PKG_CONFIG_PATH for a prefix" % error)
    return shlex.split(output)


compile_flags = pkg_config("--cflags")
link_flags = pkg_config("--libs")
library_directories = [flag[2:] for flag in link_flags if flag.startswith("-L")]
setup(
    name="intake",
    version=pkg_config("--modversion")[0],
    description="intake: produce to intaked, consume its shared-memory logs zero-copy",
    packages=["intake"],
    ext_modules=[
        Extension(
            "intake._intake",
            sources=[os.path.join("src", "_intake.c")],
            include_dirs=[flag[2:] for flag in compile_flags if flag.startswith("-I")],
            library_dirs=library_directories,
            libraries=[flag[2:] for flag in link_flags if flag.startswith("-l")],
            runtime_library_dirs=[os.path.realpath(path) for path in library_directories],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                                "-Wno-cast-function-type", "-Wno-unused-parameter"],
        )
    ],
    python_requires=">=3.9",
)
