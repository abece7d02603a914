"""Maps the card's top-level folders onto one import namespace.

core/ -> decisionlab.core, domains/ -> decisionlab.domains, apps/ -> decisionlab.apps.
Sub-packages are discovered, so adding a domain needs no edit here.
"""

from setuptools import find_packages, setup

ROOTS = {"core": "decisionlab.core", "domains": "decisionlab.domains", "apps": "decisionlab.apps"}

packages: list[str] = []
package_dir: dict[str, str] = {}
for folder, name in ROOTS.items():
    packages.append(name)
    package_dir[name] = folder
    for sub in find_packages(where=folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
