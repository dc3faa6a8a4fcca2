"""L2: the only code that talks to the API server (DESIGN.md §3). Nothing here yet."""
