"""Self-checks for lesson 01 (divergences, maximum likelihood)."""

__all__: list[str] = []
