"""Run the CLI in the test process: ``sslreconciler.cli.app.main(argv)`` with what a fresh process would have.

A real ``python -m sslreconciler`` costs 0.3-0.4 s of interpreter start and imports per call; the same
call in-process costs a few hundredths once the modules are imported. What a fresh process gives for
free is done here by hand, and undone afterwards so the next test sees the test process as it was:

- stdout and stderr are captured at the file descriptors (1 and 2), so a write by anything (print,
  sys.stderr, a child that inherits them) lands in the Result, as with a pipe; sys.stdout/sys.stderr
  are new text streams on them (not a tty, as with a pipe), sys.stdin reads /dev/null;
- ``env`` is applied to os.environ for the call only; ``timeout`` is kept with SIGALRM;
- SystemExit (argparse's --help and usage errors) becomes the exit code, an uncaught exception a
  traceback on stderr and exit 1, as the interpreter does;
- process-wide state ``main`` or a command changes is put back: every signal handler (main sets SIGPIPE
  to SIG_DFL), the umask, the working directory, RLIMIT_CORE and the dumpable flag, the logging root;
  and module state a fresh process would start without is reset (the credentials directory a previous
  call's settings chose);
- ``process.no_core_dumps`` is not run here: it sets the hard RLIMIT_CORE to 0, which only a process
  with CAP_SYS_RESOURCE may raise again (containers often lack it), and every child the test process
  starts afterwards would inherit it, so a core-limit test would pass for the wrong reason. The real
  thing is proven on real processes (test_cli_processes, test_hostile_input::test_core_dumps_are_off);
- a file descriptor (not a socket) the command leaves open fails the call: a fresh process would have
  closed it at exit, and a leaked writer-lock descriptor would make the next call wait.

It is not thread-safe (os.environ, fds 1/2, signal handlers are the process's): it refuses to run off
the main thread or while another call runs, and refuses to start the daemon (``run`` past its argument
parsing: signals, a loop, threads).
Tests about the process itself use ``run_cli(..., process=True)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import Iterator, Sequence

PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
# The filters of a release interpreter started without -W or PYTHONWARNINGS (the docs' "default warning
# filters"), most specific first; and the function that prints a warning to sys.stderr.
_DEFAULT_WARNINGS = [("ignore", DeprecationWarning), ("ignore", PendingDeprecationWarning),
                     ("ignore", ImportWarning), ("ignore", ResourceWarning)]
_SHOW_WARNING = warnings._showwarning_orig  # type: ignore[attr-defined]
_LIBC = ctypes.CDLL(None, use_errno=True)
_BUSY = threading.Lock()


def _open_fds() -> set[int]:
    """This process's descriptors, but sockets: an HTTP client's pooled connection (requests, in ``acme``)
    may outlive a command without harm, as it would until the end of a one-shot process."""
    fds = {int(n): _fd_target(int(n)) for n in os.listdir("/proc/self/fd")}
    return {fd for fd, target in fds.items() if target != "?" and not target.startswith("socket:")}  # "?": listdir's


def _fd_target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


@contextlib.contextmanager
def _process_state() -> Iterator[None]:
    """Put back what a command may change for the whole process."""
    handlers = {}
    for sig in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError):
            handlers[sig] = signal.getsignal(sig)
    umask = os.umask(0o022)
    os.umask(umask)
    cwd = os.getcwd()
    core = resource.getrlimit(resource.RLIMIT_CORE)
    dumpable = _LIBC.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
    environ = dict(os.environ)
    import logging

    root_handlers, root_level = logging.root.handlers[:], logging.root.level
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        os.umask(umask)
        os.chdir(cwd)
        if resource.getrlimit(resource.RLIMIT_CORE) != core:
            # Root may raise a hard limit again; anyone else cannot, and a later test that checks a
            # child's core limit would then pass for the wrong reason: say so rather than go on.
            try:
                resource.setrlimit(resource.RLIMIT_CORE, core)
            except (ValueError, OSError) as exc:
                raise RuntimeError(f"in-process CLI lowered RLIMIT_CORE and it cannot be put back: {exc}") from None
        if dumpable >= 0:
            _LIBC.prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0)
        os.environ.clear()
        os.environ.update(environ)
        logging.root.handlers[:] = root_handlers
        logging.root.setLevel(root_level)


def _fresh_modules() -> None:
    """Module state a fresh process starts without (only for modules a previous call imported)."""
    credentials = sys.modules.get("sslreconciler.config.credentials")
    if credentials is not None:
        credentials.use_fallback_dir(credentials.DEFAULT_CREDENTIALS_DIR)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")  # sslreconciler.cli.main's (hooks inherit it)


def _skipped_hardening() -> None:
    """In place of process.no_core_dumps for an in-process call (see the module's docstring)."""


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # what the interpreter does with a message
    return 1


class _TimedOut(BaseException):  # not an Exception: no ``except Exception`` in the product swallows it
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _TimedOut


class _DaemonRefused(BaseException):
    pass


def _no_daemon(*args: object, **kwargs: object) -> int:
    """In place of daemon.loop.run_daemon: `run` past its argument parsing (--help is fine here)."""
    raise _DaemonRefused


def call_main(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``main(argv)`` run here. Past ``timeout`` seconds a SIGALRM raises
    in the command (a blocking system call returns EINTR) and subprocess.TimeoutExpired is raised, as
    subprocess.run does for a process: a hang is a failure, not a stuck suite."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the in-process CLI runs on the main thread only: use run_cli(..., process=True)")
    if not _BUSY.acquire(blocking=False):
        raise RuntimeError("the in-process CLI is already running a command: use run_cli(..., process=True)")
    try:
        return _call(list(argv), env or {}, timeout)
    finally:
        _BUSY.release()


def _call(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    from sslreconciler import process
    from sslreconciler.cli.app import main
    from sslreconciler.daemon import loop as daemon_loop

    run_daemon = daemon_loop.run_daemon
    with (
        tempfile.TemporaryFile() as out_file,
        tempfile.TemporaryFile() as err_file,
        open(os.devnull) as devnull,
        _process_state(),
        warnings.catch_warnings(),
    ):
        # Warnings as a fresh interpreter shows them (on its stderr), not pytest's recording of them.
        warnings.resetwarnings()
        for action, category in reversed(_DEFAULT_WARNINGS):
            warnings.filterwarnings(action, category=category)
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        warnings.showwarning = _SHOW_WARNING
        sys.stdout.flush()
        sys.stderr.flush()
        saved_streams = sys.stdin, sys.stdout, sys.stderr
        saved_fds = os.dup(1), os.dup(2)
        before = _open_fds()
        os.dup2(out_file.fileno(), 1)
        os.dup2(err_file.fileno(), 2)
        sys.stdin = devnull
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
        )
        timed_out = refused = False
        hardening = process.no_core_dumps
        process.no_core_dumps = _skipped_hardening  # main imports it from the module on each call
        daemon_loop.run_daemon = _no_daemon
        try:
            os.environ.update(env)
            _fresh_modules()
            signal.signal(signal.SIGALRM, _alarm)  # _process_state puts the old handler back
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                try:
                    rc = main(argv)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except _TimedOut:
                timed_out = True
                rc = -signal.SIGALRM
            except _DaemonRefused:
                refused = True
                rc = -1
            except SystemExit as exc:
                rc = _exit_code(exc)
            except BaseException:  # what the interpreter does with an uncaught exception
                traceback.print_exc()
                rc = 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            process.no_core_dumps = hardening
            daemon_loop.run_daemon = run_daemon
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)
            sys.stdin, sys.stdout, sys.stderr = saved_streams
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read().decode(), err_file.read().decode()
        if timed_out:
            raise subprocess.TimeoutExpired(argv, timeout, out, err)
        if refused:
            raise RuntimeError("`run` is the daemon: start it as a process (daemonkit, or run_cli(..., process=True))")
        left = sorted(_open_fds() - before - set(saved_fds))
        if left:  # an object in a reference cycle may still hold one: what is garbage is not a leak
            import gc

            gc.collect()
            left = sorted(_open_fds() - before - set(saved_fds))
        if left:
            raise RuntimeError(f"`{' '.join(argv)}` left descriptors open: {[(fd, _fd_target(fd)) for fd in left]}")
        return rc, out, err
