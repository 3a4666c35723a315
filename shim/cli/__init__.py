"""The ``shim`` command line: a thin layer over the libraries in shim.*."""
