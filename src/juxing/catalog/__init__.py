"""Catalog: merchants, categories, products, SKUs and images."""
