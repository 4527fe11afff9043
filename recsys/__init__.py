"""Domain core of Loyalty Offers: data contract, features, business rules, cache layout, settings."""
