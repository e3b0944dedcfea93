"""Local fake servers that speak real wire protocols where no real server can run here."""
