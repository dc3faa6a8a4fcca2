"""Command-line entry points: the `koos` command (and later the `kubectl koos` plugin)."""
