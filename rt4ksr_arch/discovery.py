"""BasicSR-style discovery: import every module of a subpackage whose name ends with a suffix.

Importing a module runs its ``@*_REGISTRY.register()`` decorators, so dropping a new
``foo_arch.py`` into ``archs/`` is all it takes to make ``type: Foo`` usable in a YAML.
"""
import importlib
import os


def import_modules_with_suffix(package: str, package_dir: str, suffix: str) -> None:
    """Import ``package.<name>`` for each ``<name><suffix>.py`` in ``package_dir`` (sorted)."""
    for filename in sorted(os.listdir(package_dir)):
        if filename.endswith(suffix + '.py'):
            importlib.import_module(f'{package}.{filename[:-3]}')
