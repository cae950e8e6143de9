"""Invoice documents: Factur-X (PDF/A-3 + EN 16931 CII XML)."""
