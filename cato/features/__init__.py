"""Feature catalog: what cato can compute per connection, declared once."""

from cato.features.catalog import (
    CATALOG,
    FEATURES_BY_NAME,
    MISSING_VALUE,
    Feature,
    UnknownFeatureError,
    catalog_hash,
    resolve,
)

__all__ = ["CATALOG", "FEATURES_BY_NAME", "MISSING_VALUE", "Feature", "UnknownFeatureError", "catalog_hash", "resolve"]
