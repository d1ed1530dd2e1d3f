"""Access to a programme: API keys with scopes (staff logins join later)."""
