"""Trust and safety: signals about who is behind each account, rules as data, risk states (docs/fraud.md)."""
