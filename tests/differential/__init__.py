"""Differential tests: Django's sync ORM is the oracle for vinyl (issue 12).

``grammar`` draws seeded random QuerySet chains and writes, ``runner`` runs
each on both ORMs over the same tables, ``compare`` says whether the answers
agree, and ``known`` lists the mismatch classes already reported.
"""
