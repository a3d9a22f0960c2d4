"""The reading stage: analyse stored run folders, draw plots, write reports and comparisons (no torch needed)."""
