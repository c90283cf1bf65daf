"""aigc_course: tested building blocks for the AIGC course notebooks."""

__version__ = "0.1.0"
