"""Protocol parsers: pure functions over bytes (sans-I/O).

No I/O, no clock, no globals. Each parser takes bytes and returns frozen
dataclasses, or raises `ParseError` (the one error every parser may raise);
callers turn that error into a counted weird.
"""
