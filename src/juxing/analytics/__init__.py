"""Analytics: audience segments (人以群分), dashboard rollups and dashboards."""
