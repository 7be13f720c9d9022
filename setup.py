"""What pyproject.toml cannot say: the top-level templates/ ships as `sop_compiler.templates`.

Everything else (metadata, dependencies, package data) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, find_packages, setup

templates = ["sop_compiler.templates"] + [
    f"sop_compiler.templates.{name}" for name in find_namespace_packages(where="templates")
]
setup(
    # starter/ holds the files `sopc init` writes (data, no code)
    packages=[
        *find_packages(include=["sop_compiler", "sop_compiler.*"]),
        "sop_compiler.starter",
        *templates,
    ],
    package_dir={"sop_compiler.templates": "templates"},
)
