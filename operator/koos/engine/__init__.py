"""L1 decisions, pure and synchronous: validation, expressions, planning (DESIGN.md §1, §3).

No kopf, no client, no asyncio, no clock, no environment. Nothing here yet.
"""
