"""Request and response bodies, grouped by resource; JSON fields are camelCase."""
