"""DaniNet BIDS App: simulate brain MRI ageing and neurodegeneration."""

__version__ = "0.1.0"
__all__ = ["__version__"]
