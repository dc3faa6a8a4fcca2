"""L3: thin kopf handlers, webhooks and startup settings (DESIGN.md §3). Nothing here yet."""
