"""tapead's compiled back end: every ``@njit`` of the project lives in this package.

Installed as ``tapead.kernels``. It imports nothing from the front end.
"""
