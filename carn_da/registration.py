"""Auto-import of role-named modules, so that registering a part in BasicSR is one decorator."""
import importlib
from basicsr.utils import scandir
from os import path as osp


def import_role_modules(package, package_file, suffix):
    """Import every ``*{suffix}.py`` module beside ``package_file`` (e.g. all ``*_arch.py`` of ``carn_da.archs``).

    Their ``@XXX_REGISTRY.register()`` decorators then fill BasicSR's registries.
    """
    folder = osp.dirname(osp.abspath(package_file))
    names = sorted(osp.splitext(osp.basename(v))[0] for v in scandir(folder) if v.endswith(f'{suffix}.py'))
    return [importlib.import_module(f'{package}.{name}') for name in names]
