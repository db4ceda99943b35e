"""Deals (聚划算): festivals, campaigns, deal items, orders, payments, refunds, coupons."""
