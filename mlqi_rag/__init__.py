"""mlqi_rag: grounded question answering over qualitative interviews about ML quality issues."""

__version__ = "0.1.0"
