"""Answer Ctrl-C at once, even while a long native computation holds the main thread.

    with announced_interrupts(lambda: print("stopping: ...", file=sys.stderr)):
        trainer.fit()

Python raises KeyboardInterrupt in the main thread only between two bytecodes: during one native call (a
backward pass, a large convolution: a minute and more on a CPU) a Ctrl-C stays silent until the call returns.
Python's own C-level signal handler, though, writes the signal's number to the wakeup file descriptor at once;
a thread blocked on reading it runs while the native call has released the GIL, as torch's calls do, and says
what the run is stopping for. The KeyboardInterrupt itself is untouched: it still stops the run where it did.
"""

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def announced_interrupts(announce: Callable[[], None]) -> Iterator[None]:
    """Within the block, announce() runs in a helper thread as soon as SIGINT arrives (at each one). Outside the
    main thread, where signals cannot be watched, the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the signal handler must never wait on a full pipe
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        # Ends when the write end is closed (an empty read).
        while received := os.read(read_end, 64):
            if signal.SIGINT in received:
                announce()

    watcher = threading.Thread(target=watch, name="interrupt-announcer", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write_end)
        watcher.join()
        os.close(read_end)
