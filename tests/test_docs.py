"""The README's examples and the public docstrings' Examples sections run as doctests."""

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["tapead.api", "tapead.transform", "tapead.custom", "tapead.tape", "tapead.tracer", "tapead.explain", "tapead.ops", "tapead.dot", "tapead.expr", "tapead.passes",
           "tapead.minimize", "tapead.dask"]


def test_readme_examples_run():
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
