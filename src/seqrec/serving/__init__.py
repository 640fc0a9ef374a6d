"""Serving trained runs: recommendations for users and sessions, batch export, the HTTP app, model export."""
