"""niworkflows' ``interfaces.bids`` calls ``templateflow.api.templates()`` when imported,
which indexes the whole TemplateFlow home with pybids (2,645 files here: 5-12 s, in the
app's process and again in every spawned worker). The app imports it through
:func:`daninet_pipeline.bids.niworkflows_bids.import_niworkflows_bids`, which lists the
template folders instead: the same names, no index."""

from __future__ import annotations

import subprocess
import sys


def _in_fresh_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=300).stdout.strip()


def test_the_sink_module_is_imported_without_indexing_the_templateflow_home():
    out = _in_fresh_python(
        "import bids.layout.layout as L\n"
        "calls = []\n"
        "init = L.BIDSLayout.__init__\n"
        "def counted(self, *a, **k):\n"
        "    calls.append(str(a[0]) if a else '')\n"
        "    return init(self, *a, **k)\n"
        "L.BIDSLayout.__init__ = counted\n"
        "import daninet_pipeline.interfaces.bids\n"
        "import daninet_pipeline.bids.naming\n"
        "print(len(calls))\n")
    print(f"pybids layouts built while importing the sink: {out}")
    assert out == "0"


def test_the_standard_spaces_are_the_templateflow_templates():
    listed = _in_fresh_python(
        "from daninet_pipeline.bids.niworkflows_bids import import_niworkflows_bids\n"
        "print(','.join(import_niworkflows_bids().STANDARD_SPACES))\n")
    indexed = _in_fresh_python("import templateflow.api as api\nprint(','.join(api.templates()))\n")
    assert listed and listed == indexed
    assert "MNI152NLin2009aSym" in listed.split(",")
