"""What a generating subcommand shows on stderr while it works: one bar per stage (decoding, sampling, encoding) of
each clip, and for a folder an overall bar over its clips.

Decoding and encoding are single calls into :mod:`av_link.utils.media_io` today, so their bars show the stage and
its elapsed time; a streaming reader or writer can advance the bar it is given (``bar.update(frames)``)."""

import os
import sys
import threading
from contextlib import contextmanager

STAGE_DELAY = 0.5  # seconds before a stage shows its bar


def _tick(bar, stop: threading.Event) -> None:
    # a blocking stage never calls bar.update(), so redraw its clock from here (update(0) honours the bar's delay)
    while not stop.wait(0.5):
        bar.update(0)


class Progress:
    """Progress bars on stderr, all off when `enabled` is false (``--quiet``, or a process other than the first under
    ``accelerate launch``). `leave` keeps finished stage bars on screen (single files); a folder run clears them so
    only its overall bar stays."""

    def __init__(self, command: str, enabled: bool = True, leave: bool = True):
        self.command, self.enabled, self.leave = command, enabled, leave

    def _bar(self, desc: str, **kwargs):
        from tqdm.auto import tqdm

        return tqdm(desc=f"{self.command}: {desc}", file=sys.stderr, disable=not self.enabled, **kwargs)

    @contextmanager
    def stage(self, verb: str, path: str):
        """A bar for one stage of a clip, e.g. ``stage("decoding", "in.mp4")``; yields the bar.

        It appears only once the stage has run for `STAGE_DELAY` seconds (so a quick stage, or an input rejected at
        once, prints nothing but its error line), then its clock ticks while the stage blocks; a failed stage's bar
        is cleared."""
        bar = self._bar(f"{verb} {os.path.basename(path)}", total=None, leave=self.leave, delay=STAGE_DELAY,
                        bar_format="{desc}: {elapsed}")
        stop = threading.Event()
        ticker = threading.Thread(target=_tick, args=(bar, stop), daemon=True)
        if not bar.disable:
            ticker.start()
        try:
            yield bar
        except BaseException:
            bar.leave = False
            raise
        finally:
            stop.set()
            if ticker.is_alive():
                ticker.join()
            bar.close()

    def clips(self, total: int, desc: str = "clips"):
        """The overall bar of a folder run (advance it once per clip)."""
        return self._bar(desc, total=total, unit="clip", leave=True, dynamic_ncols=True)

    def note(self, message: str) -> None:
        """A line on stderr that does not break the bars (printed whatever `enabled` is: failures must show)."""
        from tqdm.auto import tqdm

        tqdm.write(f"{self.command}: {message}", file=sys.stderr)

    def sampling(self, pipe) -> None:
        """Configure the pipeline's own step bar, and name the number of windows in it once the pipeline has planned
        them (that happens inside the call, just before the step bar opens)."""
        pipe.set_progress_bar_config(disable=not self.enabled, desc=f"{self.command}: sampling", file=sys.stderr,
                                     leave=self.leave)
        plan = getattr(pipe, "windows_for", None)
        if plan is None or getattr(plan, "_names_windows", False):
            return

        def windows_for(*args, **kwargs):
            windows = plan(*args, **kwargs)
            count = len(windows)
            pipe._progress_bar_config["desc"] = f"{self.command}: sampling {count} window{'s' * (count != 1)}, steps"
            return windows

        windows_for._names_windows = True
        pipe.windows_for = windows_for  # an instance attribute: this pipeline object only
