"""Pictures and documents made from results (figures are returned, never shown)."""
