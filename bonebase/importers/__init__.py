"""Importers of public datasets (BTXRD, #20): each turns a downloaded dataset into submissions
that go through the same flow as a hospital's."""
