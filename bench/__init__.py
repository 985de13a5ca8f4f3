"""tapead's benchmarks (not part of the installed package): run each script as a module from the
repository root, e.g. ``python -m bench.compare``; see bench/README.md."""
