"""Programmes (tenants): settings, currency and point value, expiry policy."""
