"""Self-checks for lesson 00 (the AIGC pipeline)."""

__all__: list[str] = []
