# The example of memory_profiler's README: run it with
#   python -m memory_profilerxx seed.py
# `profile` comes from builtins under the profiler; the import makes the script run alone too.
try:
    profile  # noqa: B018
except NameError:
    from memory_profilerxx import profile


@profile
def my_func():
    a = [1] * (10 ** 6)
    b = [2] * (2 * 10 ** 7)
    del b
    return a


if __name__ == "__main__":
    my_func()
