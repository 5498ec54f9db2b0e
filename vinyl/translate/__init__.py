"""Django ``Query`` to ``(sql, params)``, and values in and out of drivers.

Nothing here does I/O.
"""
