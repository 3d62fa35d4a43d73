"""cato: cost-aware traffic features for machine learning, computed natively in Zeek."""

__version__ = "0.1.0"
