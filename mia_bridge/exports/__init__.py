"""Outputs in other tools' formats: Sparrow CSVs, Timesketch timeline."""
