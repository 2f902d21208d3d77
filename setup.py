"""Everything is in pyproject.toml except what it cannot say: the top-level conf/ ships as the subpackage
``scmodal_jax.conf`` beside the automatically found ``scmodal_jax`` packages (setuptools' automatic discovery
does not combine with a package mapped to another folder)."""

from setuptools import find_namespace_packages, find_packages, setup

# conf/'s group folders (data/, train/, ...) hold only YAML; listed as packages so setuptools ships them as such
# instead of warning that they are importable but not configured.
CONF_GROUPS = find_namespace_packages(where="conf", exclude=["__pycache__", "*.__pycache__"])

setup(
    packages=[
        *find_packages(include=["scmodal_jax", "scmodal_jax.*"]),
        "scmodal_jax.conf",
        *(f"scmodal_jax.conf.{group}" for group in CONF_GROUPS),
    ],
    package_dir={"scmodal_jax.conf": "conf"},
)
