"""The inference core: plain Python, no Django import.

Prompt rendering, verdict parsing, yes-probability, model backends. Usable on a
GPU box or in a notebook without a database; the Django app around it only
loads rows, calls this package and stores what it returns.
"""
