"""Package discovery for the ``edgedeploy`` namespace: ``edgedeploy/`` plus three sibling
folders installed inside it (``exporters/`` -> ``edgedeploy.exporters``, ``runtimes/`` ->
``edgedeploy.runtimes``, ``device_profiles/`` -> ``edgedeploy.device_profiles``; the bare names
are taken on PyPI). Every package below them is found, none is listed by hand. Everything else
is in pyproject.toml."""

from setuptools import find_packages, setup

ROOTS = {
    "edgedeploy": "edgedeploy",
    "edgedeploy.exporters": "exporters",
    "edgedeploy.runtimes": "runtimes",
    "edgedeploy.device_profiles": "device_profiles",
}

packages = []
for name, folder in ROOTS.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=ROOTS)
