"""Execute chapters with papermill into a report directory, and stop cleanly on SIGINT/SIGTERM.

Execution is papermill's Python API over local kernels talking IPC sockets in a private temporary
folder. What is ours: every check runs before the first kernel starts (parameters, providers, output
directory), and a signal stops the kernel, marks the chapter ``interrupted``, still writes the index and
removes the kernel folder — papermill and nbclient leave the kernel running when interrupted.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

from agentops._pids import pid_exists
from agentops.cookbook._chapters import (
    Chapter,
    ParameterWarning,
    coerce_parameters,
    discover,
    find_chapters,
    notebooks_root,
    partial_parameter_message,
    undeclared_parameters,
)
from agentops.cookbook._forkserver import ForkServer, fork_enabled
from agentops.cookbook._output import check_output_dir
from agentops.cookbook._providers import check_providers
from agentops.cookbook._report import (
    ChapterResult,
    RunReport,
    clean_error,
    package_versions,
    render_html,
    write_index,
)
from agentops.errors import ParameterError

_KERNEL_DIR_PREFIX = "agentops-kernels-"
_MAX_BASE_BYTES = 60


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM; the partial report (index included) is in :attr:`report`."""

    def __init__(self, report: RunReport, signum: int, chapter: str | None) -> None:
        self.report = report
        self.signum = signum
        self.chapter = chapter
        self.exit_code = 128 + signum
        where = f" during chapter {chapter}" if chapter else ""
        super().__init__(f"interrupted by {signal.Signals(signum).name}{where}; partial report: {report.index_md}")


class _Stop(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


@contextmanager
def _stop_on_signals(first: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``first`` and raise :class:`_Stop`, once; later ones (during clean-up) are ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        if not fired:
            fired.append(signum)
            first()
            raise _Stop(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _kernel_base() -> Path:
    """Where kernel folders go: the temporary directory, unless its path is too long for IPC sockets.

    A Unix socket path holds at most 107 bytes; ``<base>/agentops-kernels-<pid>-<random>/kernel-N-M``
    adds about 45, so a long ``TMPDIR`` falls back to ``/tmp``.
    """
    base = Path(tempfile.gettempdir())
    return base if len(os.fsencode(base)) <= _MAX_BASE_BYTES else Path("/tmp")


def _remove_stale_kernel_dirs() -> None:
    """Remove kernel folders left by runs that were killed (SIGKILL): their owning process is gone."""
    for d in _kernel_base().glob(f"{_KERNEL_DIR_PREFIX}*-*"):
        pid = d.name[len(_KERNEL_DIR_PREFIX) :].split("-", 1)[0]
        with suppress(OSError):
            if pid.isdigit() and d.stat().st_uid == os.getuid() and not pid_exists(int(pid)):
                shutil.rmtree(d, ignore_errors=True)


@contextmanager
def _ipc_kernels(forkserver: ForkServer | None = None) -> Iterator[Any]:
    """A kernel-manager class whose kernels talk over IPC sockets in a private temporary directory.

    Local kernels need no TCP port; over IPC nothing listens on the network and ipykernel does not
    warn (once per chapter) that TCP traffic is unencrypted. The directory is removed afterwards, and
    the class keeps its instances (``started``) so an interrupted run can stop their kernels. With a
    ``forkserver``, kernels are forked from it (:mod:`agentops.cookbook._forkserver`) when they can be.
    """
    from jupyter_client.manager import AsyncKernelManager

    from agentops.cookbook._forkserver import fork_provisioner

    _remove_stale_kernel_dirs()
    root = Path(tempfile.mkdtemp(prefix=f"{_KERNEL_DIR_PREFIX}{os.getpid()}-", dir=_kernel_base()))
    counter = iter(range(1_000_000))

    class IPCKernelManager(AsyncKernelManager):
        started: ClassVar[list[AsyncKernelManager]] = []
        kernel_cwd: ClassVar[str | None] = None
        forkserver: ClassVar[ForkServer | None] = None

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(root / f"kernel-{next(counter)}")
            IPCKernelManager.started.append(self)

        async def start_kernel(self, **kwargs: Any) -> None:  # type: ignore[override]
            # The kernel starts in its chapter's folder without a process-wide chdir: papermill's ``cwd``
            # changes the directory of the whole process, which races when chapters run on threads.
            if self.kernel_cwd and not kwargs.get("cwd"):
                kwargs["cwd"] = self.kernel_cwd
            if self.forkserver is not None and self.provisioner is None and not _named_provisioner(self):
                self.kernel_id = self.kernel_id or kwargs.pop("kernel_id", None) or str(uuid.uuid4())
                self.provisioner = fork_provisioner()(
                    kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
                )
            await super().start_kernel(**kwargs)

    IPCKernelManager.forkserver = forkserver

    try:
        yield IPCKernelManager
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _named_provisioner(km: Any) -> bool:
    """Whether the kernel spec asks for a provisioner of its own (then it is used, not the fork server)."""
    return bool((km.kernel_spec.metadata or {}).get("kernel_provisioner"))


@contextmanager
def _forkserver(enabled: bool) -> Iterator[ForkServer | None]:
    """The zygote kernels fork from (started now: its imports overlap the first chapters' set-up), closed after."""
    server = ForkServer() if enabled else None
    if server is not None:
        server.start()
    try:
        yield server
    finally:
        if server is not None:
            server.close()


def _kill_kernels(manager: Any) -> None:
    """Kill every kernel process group the manager class started (kernels run in their own session)."""
    for km in manager.started:
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is None or process.poll() is not None:
            continue
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with suppress(Exception):
            process.kill()
            process.wait(timeout=10)


def _quiet_event_loop() -> None:
    """Cancel what the interrupted execution left on this thread's event loop, and silence its reports.

    nbclient's tasks were cut off mid-flight; without this, exit prints "Task was destroyed but it is
    pending" and "Task exception was never retrieved" with tracebacks of a kernel we killed on purpose.
    """
    import asyncio

    with suppress(Exception):
        loop = asyncio.get_event_loop_policy().get_event_loop()
        loop.set_exception_handler(lambda _loop, _context: None)
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending and not loop.is_running():
            loop.run_until_complete(asyncio.wait(pending, timeout=5))


@contextmanager
def _kernel_env() -> Iterator[None]:
    """Kernels inherit the environment: drop ``MPLBACKEND`` so figures use the inline backend.

    With ``MPLBACKEND=Agg`` (common on CI machines) ``plt.show()`` displays nothing, and a report or
    nbval run would silently lose every figure.
    """
    saved = os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MPLBACKEND"] = saved


def _execute(chapter: Chapter, params: dict[str, Any], output: Path, kernel: str, manager: Any) -> ChapterResult:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    result = ChapterResult(
        chapter.name, "passed", 0.0, chapter.values(params), output, given=params, title=chapter.title
    )
    start = time.perf_counter()
    in_folder = type("ChapterKernelManager", (manager,), {"kernel_cwd": str(chapter.path.parent.resolve())})
    try:
        pm.execute_notebook(
            str(chapter.path.resolve()),
            str(output.resolve()),
            parameters=params,
            kernel_name=kernel,
            progress_bar=False,
            log_output=False,
            kernel_manager_class=in_folder,
        )
    except PapermillExecutionError as exc:
        # cell_index counts every cell of the executed report (papermill's injected-parameters cell
        # included), so it points at the right cell of the notebook the reader opens in reports/.
        result.status, result.failed_cell = "failed", exc.cell_index
        result.error = clean_error(f"{exc.ename}: {exc.evalue}")
    except Exception as exc:  # kernel died, bad notebook, ...
        result.status, result.error = "failed", clean_error(f"{type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - start
    return result


def _validate(
    names: Sequence[str], parameters: Mapping[str, Any], notebooks_dir: str | Path | None
) -> tuple[list[Chapter], dict[str, dict[str, Any]]]:
    chapters = find_chapters(names, discover(notebooks_dir))
    if not chapters:
        raise ParameterError(f"no chapters found to run in {notebooks_root(notebooks_dir)}")
    typed = coerce_parameters(chapters, parameters)
    for name, missing in undeclared_parameters(chapters, list(parameters)).items():
        warnings.warn(ParameterWarning(partial_parameter_message(name, chapters, missing)), stacklevel=4)
    check_providers(chapters, typed)
    return chapters, typed


def preflight(
    names: Sequence[str] = (),
    parameters: Mapping[str, Any] | None = None,
    output_dir: str | Path = "reports",
    *,
    notebooks_dir: str | Path | None = None,
    force: bool = False,
) -> list[Chapter]:
    """Every check :func:`run` makes before a kernel starts, with nothing started or written.

    Raises:
        the errors :func:`run` raises before executing (parameters, providers, output directory).
    """
    chapters, _typed = _validate(names, dict(parameters or {}), notebooks_dir)
    check_output_dir(output_dir, force=force, protect=[notebooks_root(notebooks_dir)], create=False)
    return chapters


_OFFLINE_BACKENDS = ("offline", "replay")


def default_jobs(chapters: Sequence[Chapter], typed: Mapping[str, Mapping[str, Any]]) -> int:
    """Chapters run at once when ``jobs`` is not given: one more than the cores (at most 4) offline, one with a
    real model.

    Offline chapters are CPU-bound and independent, but each kernel also waits — on its client between
    cells, on kernel start — so one chapter per core leaves a core idle part of the time; one more fills it.
    Measured back to back on 2 cores, 11 chapters, kernels forked (``benchmarks/cookbook_runtime.py --whole
    --only-whole --jobs 2,3,4,4,3,2``, a machine under other load): 2 at a time 68 s, 3 at a time 46–65 s,
    4 at a time 48–50 s, each 39–46 CPU-seconds — 3 and 4 are within the noise, 2 is clearly slower; before
    kernels were forked it was 62–65 s with 3 against 66–68 s with 2 on a quiet machine. A real provider gets
    one chapter at a time: a local server answers one request at a time, and a hosted one has rate limits.
    """
    real = any(str(typed[c.name].get("llm_backend", "offline")) not in _OFFLINE_BACKENDS for c in chapters)
    cores = os.cpu_count()
    return 1 if real or not cores else max(1, min(len(chapters), cores + 1, 4))


class _Pool:
    """Chapters executed by ``jobs`` worker threads, results kept in chapter order.

    Each worker drives its own kernel through papermill (kernels are separate processes, so threads
    only wait on them). A signal stops everything: kernels are killed, chapters that never started are
    ``not run``, the ones that were running are ``interrupted``.
    """

    def __init__(self, chapters: Sequence[Chapter], typed: Any, out: Path, kernel: str, manager: Any) -> None:
        self.chapters, self.typed, self.out, self.kernel, self.manager = chapters, typed, out, kernel, manager
        self.results: dict[str, ChapterResult] = {}
        self.running: dict[str, float] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def execute(self, chapter: Chapter, render: bool) -> ChapterResult | None:
        with self._lock:
            if self.stopping.is_set():
                return None
            self.running[chapter.name] = time.perf_counter()
        result = _execute(chapter, self.typed[chapter.name], self.out / chapter.path.name, self.kernel, self.manager)
        if self.stopping.is_set():
            return None
        result.html = render_html(result.output) if render and result.output.exists() else None
        with self._lock:
            self.results[chapter.name] = result
            self.running.pop(chapter.name, None)
        return result

    def stop(self) -> None:
        with self._lock:
            self.stopping.set()
        _kill_kernels(self.manager)

    def ordered(self, signum: int | None = None) -> tuple[list[ChapterResult], str | None]:
        """Results in chapter order; after a signal, the running chapters become ``interrupted``."""
        ordered, first_interrupted = [], None
        for chapter in self.chapters:
            result = self.results.get(chapter.name)
            if result is None and signum is not None:
                result = self._unfinished(chapter, signum)
                if result.status == "interrupted":
                    first_interrupted = first_interrupted or chapter.name
            if result is not None:
                ordered.append(result)
        return ordered, first_interrupted

    def _unfinished(self, chapter: Chapter, signum: int) -> ChapterResult:
        params = self.typed[chapter.name]
        output = self.out / chapter.path.name
        began = self.running.get(chapter.name)
        result = ChapterResult(
            chapter.name,
            "interrupted" if began is not None else "not run",
            time.perf_counter() - began if began is not None else 0.0,
            chapter.values(params),
            output,
            error=f"stopped by {signal.Signals(signum).name}" if began is not None else None,
            given=params,
            title=chapter.title,
        )
        if began is not None and output.exists():
            result.html = render_html(output)
        return result


def _wait_all(pool: _Pool, chapters: Sequence[Chapter], jobs: int, render: bool, bar: Any) -> None:
    """Run every chapter on ``jobs`` threads; the main thread waits (and receives signals) meanwhile."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="chapter")
    try:
        pending = {executor.submit(pool.execute, c, render) for c in chapters}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                if result is not None:
                    bar.update(1)
                    bar.set_postfix_str(result.chapter)
    except _Stop:
        pool.stop()
        for future in pending:
            future.cancel()
        while any(not f.done() for f in pending):  # a worker may have started a kernel after the first kill
            wait(pending, timeout=0.5)
            _kill_kernels(pool.manager)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def run(
    names: Sequence[str] = (),
    parameters: Mapping[str, Any] | None = None,
    output_dir: str | Path = "reports",
    *,
    notebooks_dir: str | Path | None = None,
    kernel: str = "python3",
    progress: bool = True,
    force: bool = False,
    render: bool = True,
    jobs: int | None = None,
    fork_kernels: bool | None = None,
) -> RunReport:
    """Check everything, execute the chapters into ``output_dir``, render them and write the index.

    ``jobs`` chapters execute at once (default: :func:`default_jobs`); results and the index keep chapter order.
    Kernels are forked from one process that imported AG2, pandas and matplotlib once (Linux; ``fork_kernels=False``
    or ``AGENTOPS_FORK_KERNELS=0`` starts each the usual way): see :mod:`agentops.cookbook._forkserver`.

    Raises:
        ParameterError: an unknown chapter or parameter, a badly typed value, or ``jobs`` < 1 — nothing executed.
        MissingCredentialsError / ConfigError: a real provider that cannot be built, or an ``output_dir``
            that is a file, ``/``, the notebooks directory, or not empty and not a report of ours
            (pass ``force=True``) — nothing executed.
        RunInterrupted: SIGINT or SIGTERM arrived; kernels were stopped and the index written first.
    """
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ParameterError(f"jobs must be a whole number >= 1, got {jobs!r}: --jobs 1 runs one chapter at a time")
    parameters = dict(parameters or {})
    chapters, typed = _validate(names, parameters, notebooks_dir)
    out = check_output_dir(output_dir, force=force, protect=[notebooks_root(notebooks_dir)])
    jobs = jobs or default_jobs(chapters, typed)
    # the environment is set once for every kernel: changing it per chapter would race between threads
    with (
        _kernel_env(),
        _forkserver(fork_enabled(fork_kernels)) as server,
        _ipc_kernels(server) as manager,
        _stop_on_signals(lambda: _kill_kernels(manager)),
    ):
        report, stopped = _run_pool(_Pool(chapters, typed, out, kernel, manager), jobs, render, progress)
    if stopped:
        raise RunInterrupted(report, *stopped)
    return report


def _run_pool(pool: _Pool, jobs: int, render: bool, progress: bool) -> tuple[RunReport, tuple[int, str | None] | None]:
    """Execute every chapter on the pool and write the index, even after a signal (then ``stopped`` is set)."""
    from tqdm.auto import tqdm

    stopped: tuple[int, str | None] | None = None
    bar = tqdm(total=len(pool.chapters), desc="chapters", unit="chapter", disable=not progress, file=sys.stderr)
    try:
        _wait_all(pool, pool.chapters, jobs, render, bar)
        results, _ = pool.ordered()
    except _Stop as stop:
        _quiet_event_loop()
        results, current = pool.ordered(stop.signum)
        stopped = (stop.signum, current)
    finally:
        bar.close()
    versions = package_versions()
    signame = signal.Signals(stopped[0]).name if stopped else None
    md, html_path = write_index(results, versions, pool.out, signame)
    failures = [r for r in results if r.status == "failed"]
    return RunReport(results, versions, md, html_path, failures, interrupted_by=signame), stopped


def _execute_in_place(client: Any) -> None:
    """``NotebookClient.execute`` through the synchronous kernel set-up papermill uses.

    ``execute()`` installs asyncio handlers for SIGINT/SIGTERM that shut the kernel down gracefully,
    override ours and, when removed, leave the default handlers behind; ``setup_kernel`` installs none.
    """
    client.reset_execution_trackers()
    with client.setup_kernel():
        info = client.wait_for_reply(client.kc.kernel_info())
        client.nb.metadata["language_info"] = info["content"]["language_info"]
        for index, cell in enumerate(client.nb.cells):
            client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        client.set_widgets_metadata()


def refresh(names: Sequence[str] = (), *, notebooks_dir: str | Path | None = None, timeout: int = 600) -> list[Path]:
    """Re-execute chapters in place with default parameters (for maintainers before committing outputs).

    A chapter is replaced only once it executed completely; SIGINT/SIGTERM stop the kernel and leave it as it was.
    """
    import nbclient
    import nbformat

    paths = []
    for chapter in find_chapters(names, discover(notebooks_dir)):
        nb = nbformat.read(chapter.path, as_version=4)
        with _ipc_kernels() as manager, _stop_on_signals(lambda: _kill_kernels(manager)), _kernel_env():
            client = nbclient.NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",
                kernel_manager_class=manager,
                resources={"metadata": {"path": str(chapter.path.parent)}},
                coalesce_streams=True,  # one output per stream: committed notebooks do not depend on timing
            )
            try:
                _execute_in_place(client)
            except _Stop:  # the kernel is gone and the chapter untouched; exit 130/143 from the CLI
                _quiet_event_loop()
                raise
        nb.metadata.pop("papermill", None)
        for cell in nb.cells:
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        tmp = chapter.path.with_suffix(".ipynb.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(chapter.path)  # atomic: a failed run never leaves a half-written notebook
        paths.append(chapter.path)
    return paths
