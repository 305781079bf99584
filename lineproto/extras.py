"""How the installed package presents itself: its program names, and its optional extras.

The core runs on the standard library alone; a few features need a package that one of the
extras in pyproject.toml brings (``pip install 'lineproto[metrics]'``). :func:`require` is the
one place that imports such a package, so asking for the feature without it is always the same
single line (exit 2 through :class:`~lineproto.errors.StartError`), never an ImportError traceback.
"""

import importlib
import os
import sys
from types import ModuleType

from . import PRODUCT
from .errors import StartError


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature`` (an option such as ``--metrics-port``), or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise StartError(f"{feature} needs the {extra} extra: pip install '{PRODUCT}[{extra}]'") from None


def program_name(default: str) -> str:
    """What to call this program in messages: the command as it was run.

    ``lineproto-daemon``, ``daemon.py``, ``lineproto`` and ``client.py`` are named by the
    command line; run as ``python -m lineproto.daemon`` (or ``-m lineproto``) it is called
    that; ``default`` when neither says (called from Python).
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.split(".")[0] == PRODUCT:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return default if spec is not None or not name or name == "-c" else name
