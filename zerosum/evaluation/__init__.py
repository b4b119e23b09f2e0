"""Evaluation: the model's policy as a table, exploitability, win rates."""
