"""Feature flags: percentage rollouts by user, stored in PostgreSQL, cached per instance."""
