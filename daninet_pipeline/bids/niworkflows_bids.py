"""niworkflows' ``interfaces.bids`` (its ``DerivativesDataSink`` and derivative patterns),
imported without indexing the TemplateFlow home.

At import, niworkflows sets ``STANDARD_SPACES = templateflow.api.templates()``, which
builds a pybids layout of every file of the TemplateFlow home (2,645 files of the
installed skeleton: 5-12 s of one core) in the app's process and again in every spawned
MultiProc worker that unpickles a sink. The names it returns are those of the home's
``tpl-<name>`` folders; :func:`import_niworkflows_bids` lists them instead, for the time
of the import only. Nothing is downloaded: an empty home gives no standard space.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType


def template_names() -> list[str]:
    """The names of the TemplateFlow home's ``tpl-<name>`` folders, sorted."""
    from templateflow.conf import TF_HOME

    return sorted(p.name[len("tpl-"):] for p in Path(TF_HOME).glob("tpl-*") if p.is_dir())


def import_niworkflows_bids() -> ModuleType:
    """``niworkflows.interfaces.bids``, imported (once) with :func:`template_names` standing
    in for ``templateflow.api.templates``."""
    name = "niworkflows.interfaces.bids"
    if name in sys.modules:
        return sys.modules[name]
    import templateflow.api as api

    original = api.templates
    api.templates = lambda **kwargs: original(**kwargs) if kwargs else template_names()
    try:
        return importlib.import_module(name)
    finally:
        api.templates = original
