"""Reports: HTML pages with PNG figures (matplotlib), written from the tables."""
