"""A package whose names come from its submodules on first use: what a tool's --help needs of
it (names, defaults) imports with the standard library alone, the rest (NumPy, Caffe) when
called. A submodule and a function of the same name (mmsr.split, official.fetch): the package
attribute stays the function, as `from .split import split` in an eager __init__ would leave it."""
import importlib
import sys
import types


def lazy_package(name, names):
    """names: {exported name: submodule}. Call at the end of the package's __init__."""
    class Package(types.ModuleType):
        def __getattr__(self, attr):
            if attr not in names:
                raise AttributeError("module %r has no attribute %r" % (name, attr))
            value = getattr(importlib.import_module("." + names[attr], name), attr)
            types.ModuleType.__setattr__(self, attr, value)
            return value

        def __setattr__(self, attr, value):
            if attr in names and isinstance(value, types.ModuleType):
                return    # the import system naming a submodule: the function of that name wins
            types.ModuleType.__setattr__(self, attr, value)

    sys.modules[name].__class__ = Package
