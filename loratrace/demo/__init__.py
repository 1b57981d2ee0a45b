"""The local tiny model, adapters and walkthrough behind ``loratrace demo``."""
