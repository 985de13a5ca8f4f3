"""tapead's compiled back end: every ``@njit`` of the project lives in this package.

Installed as ``tapead.kernels``. The sweeps import nothing from the front end; ``generate``,
which writes them (and the sweeps specialised to a tape's ops) from the op table, reads
``tapead.ops``.
"""
