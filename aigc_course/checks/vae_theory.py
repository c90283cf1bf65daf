"""Self-checks for lesson vae_theory (being written)."""

__all__: list[str] = []
