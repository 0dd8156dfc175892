import _memxx, threading, pytest
import test_threads_exact as t
@pytest.mark.parametrize("threads", ["self", "self2"])
def test_a(threads):
    t.test_buffers_a_consumer_thread_frees_are_freed_on_the_producers_lines("all", 0)
def test_probe():
    print("PROBE", _memxx.hook_stats()["active"])
