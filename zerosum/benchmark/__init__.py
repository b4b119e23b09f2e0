"""Benchmarks of transfer: several models through one suite of in-domain games, held-out
games and math sets, into one table (`zerosum benchmark`).

`suite` reads the suite files, `run` plays and answers what the database lacks, `table`
computes the figures and their intervals from the database.
"""
