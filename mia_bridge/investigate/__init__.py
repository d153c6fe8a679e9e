"""``mia investigate``: from tenant to evidence package and report, Sparrow's searches and beyond."""
