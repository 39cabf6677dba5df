"""EarnPay's common code: configuration, database access, errors, HTTP plumbing, events and logging.

Nothing in this package imports from ``functions/``: requests travel downhill only.
"""
