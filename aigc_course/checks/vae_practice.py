"""Self-checks for lesson vae_practice (being written)."""

__all__: list[str] = []
