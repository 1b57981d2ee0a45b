"""User-outcome proxies (thumbs-down, escalation, manual review, reopened tickets) joined to the answers they are
about: importing them from other systems, and the analyses of them per adapter."""
