"""The models of the benchmark, shared by Django, Django ``a*`` and vinyl."""
